//! The person at the terminal, for confirmations: what they type and where the questions go.

use std::io::{BufRead, Write};

use crate::error::CliError;

/// Where a command asks before acting. The binary passes stdin and stderr: questions on stderr reach the
/// person even when stdout is piped into a file or `jq`. Tests pass buffers.
pub struct Console<'a> {
    pub input: &'a mut (dyn BufRead + Send),
    pub output: &'a mut (dyn Write + Send),
    /// Whether `input` is a terminal, that is whether anyone can answer. A script's stdin is not, and a
    /// script must never hang on a question.
    pub interactive: bool,
}

impl Console<'_> {
    /// Shows `text` then `question`, and reads one line. Only `y` or `yes` (any case) is a yes; anything
    /// else, an empty line and the end of input included, is a no.
    ///
    /// The read blocks the thread. That is fine for a CLI waiting on its user: nothing else needs to run
    /// meanwhile, and the gRPC connections recover on their own if idle too long.
    pub fn confirm(&mut self, text: &str, question: &str) -> Result<bool, CliError> {
        write!(self.output, "{text}{question}")?;
        self.output.flush()?;
        let mut answer = String::new();
        let read = self.input.read_line(&mut answer).map_err(CliError::Input)?;
        if read == 0 {
            // End of input (Ctrl-D): end the prompt's line so the shell's prompt starts on its own.
            writeln!(self.output)?;
        }
        Ok(is_yes(&answer))
    }
}

/// Whether a typed answer means yes.
pub fn is_yes(answer: &str) -> bool {
    let answer = answer.trim();
    answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes")
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn ask(typed: &str) -> (bool, String) {
        let mut input = Cursor::new(typed.as_bytes().to_vec());
        let mut output = Vec::new();
        let mut console = Console {
            input: &mut input,
            output: &mut output,
            interactive: true,
        };
        let yes = console
            .confirm("2 sessions will end.\n", "End 2 sessions? [y/N] ")
            .expect("confirm");
        (yes, String::from_utf8(output).expect("UTF-8"))
    }

    #[test]
    fn y_and_yes_in_any_case_confirm() {
        for typed in ["y\n", "Y\n", "yes\n", "YES\r\n", "  yes  \n", "y"] {
            assert!(ask(typed).0, "{typed:?}");
        }
    }

    #[test]
    fn anything_else_declines() {
        for typed in ["n\n", "no\n", "\n", "", "yess\n", "ye\n", "sure\n", "y es\n"] {
            assert!(!ask(typed).0, "{typed:?}");
        }
    }

    #[test]
    fn the_text_and_question_are_shown_before_reading() {
        let (_, shown) = ask("n\n");
        assert_eq!(shown, "2 sessions will end.\nEnd 2 sessions? [y/N] ");
        // At end of input the line is closed for the shell.
        let (_, shown) = ask("");
        assert_eq!(shown, "2 sessions will end.\nEnd 2 sessions? [y/N] \n");
    }
}
