//! Results: a table for people, JSON for machines, an SVG latency-percentile plot.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// One measured workload.
#[derive(Debug, Clone)]
pub struct Row {
    pub system: String,
    pub workload: String,
    pub records_per_s: f64,
    pub mb_per_s: f64,
}

/// Everything one run measured.
#[derive(Debug, Default)]
pub struct Report {
    pub machine: String,
    pub rows: Vec<Row>,
    /// (percentile label, microseconds)
    pub latency_us: Vec<(String, u64)>,
    pub notes: Vec<(String, String)>,
}

/// The percentiles reported for latency.
pub fn percentiles(h: &Histogram<u64>) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = [50.0, 90.0, 99.0, 99.9, 99.99]
        .iter()
        .map(|&p| (format!("p{p}"), h.value_at_quantile(p / 100.0)))
        .collect();
    out.push(("max".into(), h.max()));
    out
}

fn json_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Report {
    /// The table as Markdown.
    pub fn table(&self) -> String {
        let mut t = format!(
            "Machine: {}\n\n| system | workload | records/s | MB/s |\n| --- | --- | ---: | ---: |\n",
            self.machine
        );
        for r in &self.rows {
            let _ = writeln!(
                t,
                "| {} | {} | {:.0} | {:.1} |",
                r.system, r.workload, r.records_per_s, r.mb_per_s
            );
        }
        if !self.latency_us.is_empty() {
            t.push_str("\nEnd-to-end latency (Nurt, 1 KiB at 20,000 records/s, acks=all, from intended send time):\n\n| percentile | latency |\n| --- | ---: |\n");
            for (p, us) in &self.latency_us {
                let _ = writeln!(t, "| {p} | {:.2} ms |", *us as f64 / 1000.0);
            }
        }
        if !self.notes.is_empty() {
            t.push('\n');
            for (k, v) in &self.notes {
                let _ = writeln!(t, "- {k}: {v}");
            }
        }
        t
    }

    /// The whole report as JSON.
    pub fn json(&self) -> String {
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|r| {
                format!(
                    "{{\"system\":{},\"workload\":{},\"records_per_s\":{:.1},\"mb_per_s\":{:.2}}}",
                    json_str(&r.system),
                    json_str(&r.workload),
                    r.records_per_s,
                    r.mb_per_s
                )
            })
            .collect();
        let latency: Vec<String> = self
            .latency_us
            .iter()
            .map(|(p, us)| format!("{}:{us}", json_str(p)))
            .collect();
        let notes: Vec<String> = self
            .notes
            .iter()
            .map(|(k, v)| format!("{}:{}", json_str(k), json_str(v)))
            .collect();
        format!(
            "{{\"machine\":{},\"results\":[{}],\"latency_us\":{{{}}},\"notes\":{{{}}}}}\n",
            json_str(&self.machine),
            rows.join(","),
            latency.join(","),
            notes.join(",")
        )
    }

    /// Latency by percentile as an SVG line plot.
    pub fn svg(&self) -> String {
        let (w, h, pad) = (640.0, 360.0, 50.0);
        let max = self.latency_us.iter().map(|(_, v)| *v).max().unwrap_or(1).max(1) as f64;
        let n = self.latency_us.len().max(2) as f64;
        let point = |i: usize, v: u64| {
            (
                pad + i as f64 * (w - 2.0 * pad) / (n - 1.0),
                h - pad - (v as f64 / max) * (h - 2.0 * pad),
            )
        };
        let mut svg = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
        let _ = writeln!(svg, "<text x=\"{}\" y=\"20\" text-anchor=\"middle\">Nurt end-to-end latency by percentile (1 KiB, 20k/s, acks=all)</text>", w / 2.0);
        let _ = writeln!(svg, "<line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/><line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{}\" stroke=\"black\"/>", h - pad, w - pad, h - pad, h - pad);
        let _ = writeln!(svg, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.2} ms</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>", pad - 4.0, pad + 4.0, max / 1000.0, pad - 4.0, h - pad);
        let pts: Vec<String> = self
            .latency_us
            .iter()
            .enumerate()
            .map(|(i, (_, v))| {
                let (x, y) = point(i, *v);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"{}\"/>",
            pts.join(" ")
        );
        for (i, (label, v)) in self.latency_us.iter().enumerate() {
            let (x, y) = point(i, *v);
            let _ = writeln!(svg, "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"#1f77b4\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{label}</text><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{:.2}</text>", h - pad + 16.0, y - 8.0, *v as f64 / 1000.0);
        }
        svg.push_str("</svg>\n");
        svg
    }
}
