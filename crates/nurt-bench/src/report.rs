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

/// One measure of the 3-node cluster next to the single node's, both from the same run.
#[derive(Debug, Clone)]
pub struct Compared {
    pub measure: String,
    /// "records/s", "MB/s", "CPU-s/GB" or "ms".
    pub unit: &'static str,
    pub single: f64,
    pub cluster: f64,
}

impl Compared {
    fn value(&self, v: f64) -> String {
        match self.unit {
            "records/s" => format!("{v:.0} {}", self.unit),
            "MB/s" => format!("{v:.1} {}", self.unit),
            _ => format!("{v:.2} {}", self.unit),
        }
    }
}

/// One line of the latency plot: name, colour and (percentile label, microseconds).
type Series<'a> = (&'a str, &'a str, &'a [(String, u64)]);

/// Everything one run measured.
#[derive(Debug, Default)]
pub struct Report {
    pub machine: String,
    pub rows: Vec<Row>,
    /// (percentile label, microseconds)
    pub latency_us: Vec<(String, u64)>,
    /// The same latency workload against the 3-node cluster (empty if it did not run).
    pub cluster_latency_us: Vec<(String, u64)>,
    /// The 3-node cluster against the single node (empty if it did not run).
    pub cluster: Vec<Compared>,
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
            t.push_str(
                "\nEnd-to-end latency (Nurt, 1 KiB at 20,000 records/s, acks=all, from intended send time):\n\n",
            );
            if self.cluster_latency_us.is_empty() {
                t.push_str("| percentile | latency |\n| --- | ---: |\n");
                for (p, us) in &self.latency_us {
                    let _ = writeln!(t, "| {p} | {:.2} ms |", *us as f64 / 1000.0);
                }
            } else {
                t.push_str("| percentile | 1 node | 3 nodes |\n| --- | ---: | ---: |\n");
                for ((p, us), (_, cluster_us)) in self.latency_us.iter().zip(&self.cluster_latency_us) {
                    let _ = writeln!(
                        t,
                        "| {p} | {:.2} ms | {:.2} ms |",
                        *us as f64 / 1000.0,
                        *cluster_us as f64 / 1000.0
                    );
                }
            }
        }
        if !self.cluster.is_empty() {
            t.push_str("\n3-node cluster against the single node, same run (acks=all, replication factor 3, min.insync.replicas=2; the three brokers and the client share this machine):\n\n| measure | 1 node | 3 nodes | 3 nodes / 1 node |\n| --- | ---: | ---: | ---: |\n");
            for c in &self.cluster {
                let _ = writeln!(
                    t,
                    "| {} | {} | {} | {:.2}x |",
                    c.measure,
                    c.value(c.single),
                    c.value(c.cluster),
                    c.cluster / c.single
                );
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
        let cluster_latency: Vec<String> = self
            .cluster_latency_us
            .iter()
            .map(|(p, us)| format!("{}:{us}", json_str(p)))
            .collect();
        let compared: Vec<String> = self
            .cluster
            .iter()
            .map(|c| {
                format!(
                    "{{\"measure\":{},\"unit\":{},\"single_node\":{:.3},\"three_nodes\":{:.3},\"ratio\":{:.3}}}",
                    json_str(&c.measure),
                    json_str(c.unit),
                    c.single,
                    c.cluster,
                    c.cluster / c.single
                )
            })
            .collect();
        let notes: Vec<String> = self
            .notes
            .iter()
            .map(|(k, v)| format!("{}:{}", json_str(k), json_str(v)))
            .collect();
        format!(
            "{{\"machine\":{},\"results\":[{}],\"latency_us\":{{{}}},\"cluster\":{{\"latency_us\":{{{}}},\"compared\":[{}]}},\"notes\":{{{}}}}}\n",
            json_str(&self.machine),
            rows.join(","),
            latency.join(","),
            cluster_latency.join(","),
            compared.join(","),
            notes.join(",")
        )
    }

    /// Latency by percentile as an SVG line plot: the single node, and the 3-node cluster if
    /// it ran.
    pub fn svg(&self) -> String {
        let (w, h, pad) = (640.0, 360.0, 50.0);
        let series: Vec<Series> = [
            ("1 node", "#1f77b4", self.latency_us.as_slice()),
            ("3 nodes", "#ff7f0e", self.cluster_latency_us.as_slice()),
        ]
        .into_iter()
        .filter(|(_, _, s)| !s.is_empty())
        .collect();
        let max = series
            .iter()
            .flat_map(|(_, _, s)| s.iter().map(|(_, v)| *v))
            .max()
            .unwrap_or(1)
            .max(1) as f64;
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
        for (i, (label, _)) in self.latency_us.iter().enumerate() {
            let (x, _) = point(i, 0);
            let _ = writeln!(
                svg,
                "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
                h - pad + 16.0
            );
        }
        for (k, (name, color, values)) in series.iter().enumerate() {
            let pts: Vec<String> = values
                .iter()
                .enumerate()
                .map(|(i, (_, v))| {
                    let (x, y) = point(i, *v);
                    format!("{x:.1},{y:.1}")
                })
                .collect();
            let _ = writeln!(
                svg,
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
                pts.join(" ")
            );
            for (i, (_, v)) in values.iter().enumerate() {
                let (x, y) = point(i, *v);
                let _ = writeln!(svg, "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{color}\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{color}\">{:.2}</text>", y - 8.0, *v as f64 / 1000.0);
            }
            // A legend entry per series, top left, once there is more than one line.
            if series.len() > 1 {
                let y = pad + 14.0 + 16.0 * k as f64;
                let _ = writeln!(svg, "<line x1=\"{}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"{color}\" stroke-width=\"2\"/><text x=\"{}\" y=\"{:.1}\">{name}</text>", pad + 10.0, pad + 30.0, pad + 36.0, y + 4.0);
            }
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// The scale workload's table (Markdown): one row per partition count.
pub fn scale_table(machine: &str, points: &[crate::scale::Point]) -> String {
    let mut t = format!(
        "Scale on one node ({machine}), open-file limit {}:\n\n\
         | partitions | create (s) | RSS (MiB) | open fds | 1 record to each partition (s)¹ | read them back (s)¹ | clean shutdown (s) | clean start (s) | start after SIGKILL (s) | RSS after start (MiB) |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        crate::scale::OPEN_FILES
    );
    let note =
        "\n¹ librdkafka, one producer (or consumer) per 10,000 partitions, one after another, acks=1, 100 B records.\n";
    for p in points {
        let _ = writeln!(
            t,
            "| {} | {:.1} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            p.partitions,
            p.create_s,
            p.rss_mib,
            p.open_fds,
            p.produce_s,
            p.consume_s,
            p.shutdown_s,
            p.clean_start_s,
            p.crash_start_s,
            p.rss_after_start_mib
        );
    }
    t.push_str(note);
    t
}

/// Each cost against the partition count (log-scale x), as an SVG line plot: seconds on the
/// left axis (create, shutdown, the two starts), RSS in MiB on the right one.
pub fn scale_svg(points: &[crate::scale::Point]) -> String {
    let (w, h, pad) = (680.0, 380.0, 60.0);
    let xs: Vec<f64> = points.iter().map(|p| f64::from(p.partitions.max(1)).log10()).collect();
    let (x0, x1) = (
        xs.iter().copied().fold(f64::INFINITY, f64::min),
        xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let span = (x1 - x0).max(1e-9);
    let x = |v: f64| pad + (v - x0) / span * (w - 2.0 * pad);
    type Cost = fn(&crate::scale::Point) -> f64;
    let seconds: [(&str, &str, Cost); 4] = [
        ("create", "#1f77b4", |p| p.create_s),
        ("clean shutdown", "#ff7f0e", |p| p.shutdown_s),
        ("clean start", "#2ca02c", |p| p.clean_start_s),
        ("start after SIGKILL", "#d62728", |p| p.crash_start_s),
    ];
    let s_max = points
        .iter()
        .flat_map(|p| seconds.iter().map(move |(_, _, f)| f(p)))
        .fold(1.0, f64::max);
    let rss_max = points.iter().map(|p| p.rss_mib).max().unwrap_or(1).max(1) as f64;
    let y = |v: f64, max: f64| h - pad - v / max * (h - 2.0 * pad);
    let mut svg = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"20\" text-anchor=\"middle\">Nurt on one node: cost against partitions (log scale)</text>",
        w / 2.0
    );
    let _ = writeln!(svg, "<line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/><line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{}\" stroke=\"black\"/><line x1=\"{}\" y1=\"{pad}\" x2=\"{}\" y2=\"{}\" stroke=\"gray\"/>", h - pad, w - pad, h - pad, h - pad, w - pad, w - pad, h - pad);
    let _ = writeln!(svg, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{s_max:.0} s</text><text x=\"{}\" y=\"{}\" text-anchor=\"start\" fill=\"gray\">{rss_max:.0} MiB RSS</text>", pad - 4.0, pad + 4.0, w - pad + 4.0, pad + 4.0);
    for (p, &v) in points.iter().zip(&xs) {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x(v),
            h - pad + 16.0,
            p.partitions
        );
    }
    let mut line = |name: &str, color: &str, dash: &str, values: Vec<f64>, max: f64, k: usize| {
        let pts: Vec<String> = xs
            .iter()
            .zip(&values)
            .map(|(&a, &b)| format!("{:.1},{:.1}", x(a), y(b, max)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\" points=\"{}\"/>",
            pts.join(" ")
        );
        let ly = pad + 14.0 + 16.0 * k as f64;
        let _ = writeln!(svg, "<line x1=\"{}\" y1=\"{ly:.1}\" x2=\"{}\" y2=\"{ly:.1}\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\"/><text x=\"{}\" y=\"{:.1}\">{name}</text>", pad + 10.0, pad + 30.0, pad + 36.0, ly + 4.0);
    };
    for (k, (name, color, f)) in seconds.iter().enumerate() {
        line(name, color, "", points.iter().map(f).collect(), s_max, k);
    }
    line(
        "RSS (right axis)",
        "gray",
        "4 3",
        points.iter().map(|p| p.rss_mib as f64).collect(),
        rss_max,
        seconds.len(),
    );
    svg.push_str("</svg>\n");
    svg
}
