//! The structured-output mode of one endpoint: fixed by the settings, or, for `auto`,
//! found by trying the modes in order until one is not rejected. The mode that worked
//! is kept for the rest of the run, shared by every spec of the invocation.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use agent_spec::StructuredOutput;

use crate::live::request::WireMode;

#[derive(Debug)]
pub(crate) struct Negotiation {
    /// The modes that may be tried, in order; one for an explicit setting.
    ladder: Vec<WireMode>,
    step: AtomicUsize,
    /// A request in the current mode was answered: no more falling back.
    settled: AtomicBool,
}

impl Negotiation {
    pub fn new(setting: StructuredOutput) -> Negotiation {
        let ladder = match setting {
            StructuredOutput::Auto => WireMode::LADDER.to_vec(),
            StructuredOutput::JsonSchema => vec![WireMode::JsonSchema],
            StructuredOutput::JsonObject => vec![WireMode::JsonObject],
            StructuredOutput::None => vec![WireMode::Prompt],
        };
        Negotiation {
            ladder,
            step: AtomicUsize::new(0),
            settled: AtomicBool::new(false),
        }
    }

    pub fn current(&self) -> WireMode {
        let step = self.step.load(Ordering::SeqCst);
        self.ladder[step.min(self.ladder.len() - 1)]
    }

    /// After `tried` was rejected for its structured output: the mode to try next, or
    /// `None` when the setting is explicit, a mode has already worked, or none is left.
    /// Concurrent specs that see the same rejection move one step, not several.
    pub fn fall_back(&self, tried: WireMode) -> Option<WireMode> {
        if self.settled.load(Ordering::SeqCst) {
            return None;
        }
        let position = self.ladder.iter().position(|mode| *mode == tried)?;
        if position + 1 >= self.ladder.len() {
            return None;
        }
        let _ =
            self.step
                .compare_exchange(position, position + 1, Ordering::SeqCst, Ordering::SeqCst);
        Some(self.current())
    }

    pub fn settle(&self, mode: WireMode) {
        if self.current() == mode {
            self.settled.store(true, Ordering::SeqCst);
        }
    }

    /// The mode that worked, once one has.
    pub fn settled(&self) -> Option<WireMode> {
        self.settled.load(Ordering::SeqCst).then(|| self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_steps_down_once_per_rejection_and_stops_when_a_mode_worked() {
        let auto = Negotiation::new(StructuredOutput::Auto);
        assert_eq!(auto.current(), WireMode::JsonSchema);
        assert_eq!(
            auto.fall_back(WireMode::JsonSchema),
            Some(WireMode::JsonObjectSchema)
        );
        // A second spec that saw the same rejection does not skip a mode.
        assert_eq!(
            auto.fall_back(WireMode::JsonSchema),
            Some(WireMode::JsonObjectSchema)
        );
        assert_eq!(auto.settled(), None);
        auto.settle(WireMode::JsonObjectSchema);
        assert_eq!(auto.settled(), Some(WireMode::JsonObjectSchema));
        assert_eq!(auto.fall_back(WireMode::JsonObjectSchema), None);

        let explicit = Negotiation::new(StructuredOutput::JsonSchema);
        assert_eq!(explicit.fall_back(WireMode::JsonSchema), None);
        let last = Negotiation::new(StructuredOutput::Auto);
        for _ in 0..3 {
            last.fall_back(last.current());
        }
        assert_eq!(last.current(), WireMode::Prompt);
        assert_eq!(last.fall_back(WireMode::Prompt), None);
    }
}
