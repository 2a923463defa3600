//! The open-file budget: the process's `RLIMIT_NOFILE` is raised to its hard limit at start
//! (as Kafka's packaging asks operators to do by hand), and half of it goes to log files (the
//! rest to connections, the metadata log and everything else); `nurt-log`'s file cache keeps
//! the segment and index files open within that half.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Log files kept open at most, whatever the limit (a very low limit still gets some).
const LOG_FILES_MIN: usize = 64;

/// Raises the soft open-file limit to the hard one; returns the limit now in force.
pub fn raise_open_file_limit() -> u64 {
    let current = getrlimit(Resource::Nofile);
    let soft = current.current.unwrap_or(u64::MAX);
    let Some(hard) = current.maximum else {
        // Unlimited hard limit: ask for a large soft one (the kernel caps it at nr_open).
        let wanted = Rlimit {
            current: Some(1 << 20),
            maximum: None,
        };
        return match setrlimit(Resource::Nofile, wanted) {
            Ok(()) => 1 << 20,
            Err(_) => soft,
        };
    };
    if soft >= hard {
        return soft;
    }
    let raised = Rlimit {
        current: Some(hard),
        maximum: Some(hard),
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => hard,
        Err(e) => {
            tracing::warn!("could not raise the open-file limit from {soft} to {hard}: {e}");
            soft
        }
    }
}

/// How many log files may be open at once under an open-file limit of `limit`.
pub fn log_files_max(limit: u64) -> usize {
    usize::try_from(limit / 2).unwrap_or(usize::MAX).max(LOG_FILES_MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_the_limit_goes_to_log_files() {
        assert_eq!(log_files_max(20_000), 10_000);
        assert_eq!(log_files_max(10), LOG_FILES_MIN);
        let limit = raise_open_file_limit();
        let now = getrlimit(Resource::Nofile);
        assert_eq!(now.current, Some(limit), "the soft limit is what was reported");
        if let Some(hard) = now.maximum {
            assert_eq!(limit, hard, "raised to the hard limit");
        }
    }
}
