//! The suite's table: per scenario, repetitions, median and max convergence, invariants.

use std::fmt::Write as _;
use std::time::Duration;

use crate::scenarios::{Load, Outcome};

/// One scenario's repetitions.
pub struct Row {
    name: &'static str,
    convergence: Vec<Duration>,
    /// Repetitions that never converged.
    never: usize,
    health: Vec<Duration>,
    recovery: Vec<Duration>,
    broken: Vec<String>,
}

impl Row {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            convergence: Vec::new(),
            never: 0,
            health: Vec::new(),
            recovery: Vec::new(),
            broken: Vec::new(),
        }
    }

    pub fn add(&mut self, outcome: Outcome) {
        match outcome.convergence {
            Some(time) => self.convergence.push(time),
            None => self.never += 1,
        }
        self.health.extend(outcome.health);
        self.recovery.extend(outcome.recovery);
        self.broken.extend(outcome.broken);
    }

    fn reps(&self) -> usize {
        self.convergence.len() + self.never
    }

    /// Every invariant held and every repetition converged within `bound`.
    pub fn passed(&self, bound: Duration) -> bool {
        self.broken.is_empty() && self.never == 0 && self.convergence.iter().all(|time| *time <= bound)
    }
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[Duration]) -> Option<Duration> {
    let mut sorted = values.to_vec();
    sorted.sort();
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[middle]),
        _ => Some((sorted[middle - 1] + sorted[middle]) / 2),
    }
}

/// `1234 ms` style.
pub fn millis(time: Duration) -> String {
    format!("{} ms", time.as_millis())
}

/// The table, as Markdown.
pub fn table(rows: &[Row], bound: Duration, load: Load) -> String {
    let mut out = format!(
        "\nFault suite: {} gateways x {} sessions per repetition; convergence = fault healed -> every kill \
         at its gateway, none shown live, every command settled (bound {}).\n\n",
        load.gateways,
        load.sessions,
        millis(bound)
    );
    out.push_str("| scenario | reps | median | max | invariants |\n|---|---|---|---|---|\n");
    for row in rows {
        let max = row.convergence.iter().max().copied();
        let mut verdict = if row.broken.is_empty() && row.never == 0 {
            "all held".to_owned()
        } else {
            let mut broken = row.broken.clone();
            broken.dedup();
            format!("BROKEN: {}", broken.join("; "))
        };
        if max.is_some_and(|max| max > bound) {
            verdict.push_str(&format!("; OVER BOUND ({})", millis(bound)));
        }
        if let Some(health) = row.health.iter().max() {
            let _ = write!(verdict, "; NOT_SERVING within {} of the crash (max)", millis(*health));
        }
        if let (Some(median), Some(max)) = (median(&row.recovery), row.recovery.iter().max()) {
            let _ = write!(
                verdict,
                "; restart to accepting connections {} median, {} max",
                millis(median),
                millis(*max)
            );
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            row.name,
            row.reps(),
            median(&row.convergence).map_or("—".into(), millis),
            max.map_or("never".into(), millis),
            verdict
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|value| Duration::from_millis(*value)).collect()
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&ms(&[30, 10, 20])), Some(Duration::from_millis(20)));
        assert_eq!(median(&ms(&[40, 10, 20, 30])), Some(Duration::from_millis(25)));
    }

    #[test]
    fn a_row_fails_on_a_broken_invariant_a_slow_rep_or_one_that_never_converged() {
        let bound = Duration::from_secs(2);
        let mut row = Row::new("x");
        row.add(Outcome {
            convergence: Some(Duration::from_millis(500)),
            ..Outcome::default()
        });
        assert!(row.passed(bound));
        let mut slow = Row::new("slow");
        slow.add(Outcome {
            convergence: Some(Duration::from_millis(2500)),
            ..Outcome::default()
        });
        assert!(!slow.passed(bound));
        let mut never = Row::new("never");
        never.add(Outcome::default());
        assert!(!never.passed(bound));
        row.add(Outcome {
            convergence: Some(Duration::from_millis(100)),
            broken: vec!["1 kills lost".into()],
            ..Outcome::default()
        });
        assert!(!row.passed(bound));
        let table = table(
            &[row, slow],
            bound,
            Load {
                gateways: 1,
                sessions: 1,
                health_bound: bound,
            },
        );
        assert!(
            table.contains("| x | 2 | 300 ms | 500 ms | BROKEN: 1 kills lost |"),
            "{table}"
        );
        assert!(table.contains("OVER BOUND"), "{table}");
    }
}
