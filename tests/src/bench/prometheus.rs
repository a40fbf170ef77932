//! Reading the process's own Prometheus recorder: the services of the benchmark run in this
//! process, so one rendering holds ingest's, the worker's and the api's metrics. Figures are
//! the difference between two snapshots, so what happened before the measured window (the
//! warm-up) does not count. The pipeline tests read the worker processes' `/metrics` with the
//! same parser ([`Snapshot::parse`]).

/// One sample of the text exposition format: `name{label="value",...} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Everything the recorder held at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    samples: Vec<Sample>,
}

impl Snapshot {
    /// Renders the process's recorder now.
    pub fn take() -> Self {
        Self::parse(&easel_core::metrics::install().render())
    }

    /// Parses the text exposition format (comments and unreadable lines are skipped).
    pub fn parse(text: &str) -> Self {
        Self { samples: text.lines().filter_map(parse_line).collect() }
    }

    /// The sum of the samples named `name` that carry every label of `filter`.
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| filter.iter().all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v)))
            .map(|s| s.value)
            .sum()
    }
}

/// What changed between two snapshots.
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub before: Snapshot,
    pub after: Snapshot,
}

impl Window {
    /// How much the matching samples grew (counters, and histograms' `_sum` and `_count`).
    pub fn delta(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.after.sum(name, filter) - self.before.sum(name, filter)
    }
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(body)?;
        labels = parsed;
        rest = after;
    }
    // The value, then an optional timestamp.
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample { name, labels, value })
}

/// Parses `k="v",k2="v2"}` (label values may hold braces, commas and escaped quotes, as route
/// templates like `/v1/competitions/{slug}/bulk` do); returns the labels and what follows `}`.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([',', ' ']);
        if let Some(rest) = s.strip_prefix('}') {
            return Some((labels, rest));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_string();
        let mut chars = s[eq + 1..].strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.push((key, value));
        s = &s[eq + 1..][1 + end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_histograms_counters_and_route_labels() {
        let text = r#"
# TYPE easel_stage_seconds histogram
easel_stage_seconds_bucket{stage="store",le="0.001"} 3
easel_stage_seconds_sum{stage="store"} 0.0125
easel_stage_seconds_count{stage="store"} 5
easel_stage_jobs_total{stage="store"} 5
http_request_duration_seconds_sum{method="POST",path="/v1/competitions/{slug}/submissions",status="202"} 1.5
http_request_duration_seconds_sum{method="POST",path="/v1/competitions/{slug}/bulk",status="200"} 9
weird{v="a \"quoted\", {braced} value"} 2 1700000000
plain 7
"#;
        let snapshot = Snapshot::parse(text);
        assert_eq!(snapshot.sum("easel_stage_seconds_sum", &[("stage", "store")]), 0.0125);
        assert_eq!(snapshot.sum("easel_stage_jobs_total", &[("stage", "store")]), 5.0);
        assert_eq!(snapshot.sum("easel_stage_jobs_total", &[("stage", "fetch")]), 0.0);
        assert_eq!(
            snapshot.sum("http_request_duration_seconds_sum", &[("path", "/v1/competitions/{slug}/submissions")]),
            1.5
        );
        assert_eq!(snapshot.sum("http_request_duration_seconds_sum", &[("method", "POST")]), 10.5);
        assert_eq!(snapshot.sum("weird", &[("v", "a \"quoted\", {braced} value")]), 2.0);
        assert_eq!(snapshot.sum("plain", &[]), 7.0);

        let window = Window { before: Snapshot::parse("plain 2"), after: snapshot };
        assert_eq!(window.delta("plain", &[]), 5.0);
    }
}
