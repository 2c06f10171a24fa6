//! `--shard K/N`: the specs of one shard of a CI job matrix, chosen by a stable hash of
//! the spec's name, so adding a spec never moves the others and the shards together
//! hold every spec exactly once.

use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Whether the spec named `name` belongs to this shard.
    pub fn holds(&self, name: &str) -> bool {
        let digest = Sha256::digest(name.as_bytes());
        let head = u64::from_be_bytes(digest[..8].try_into().expect("eight bytes"));
        head % u64::from(self.count) == u64::from(self.index - 1)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| format!("`{text}` is not K/N (for example 2/4)"))?;
        let number = |part: &str| {
            part.trim()
                .parse::<u32>()
                .map_err(|_| format!("`{part}` in `{text}` is not a whole number"))
        };
        let (index, count) = (number(index)?, number(count)?);
        if count == 0 || index == 0 || index > count {
            return Err(format!("`{text}`: K must be from 1 to N, and N at least 1"));
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::Shard;

    #[test]
    fn the_shards_hold_every_spec_exactly_once() {
        let names: Vec<String> = (0..50).map(|i| format!("spec-{i}")).collect();
        for count in 1..=5 {
            let mut held = vec![0; names.len()];
            for index in 1..=count {
                let shard = Shard { index, count };
                for (slot, name) in held.iter_mut().zip(&names) {
                    *slot += usize::from(shard.holds(name));
                }
            }
            assert!(
                held.iter().all(|&times| times == 1),
                "N = {count}: {held:?}"
            );
        }
        let two = |index| {
            names
                .iter()
                .filter(|name| Shard { index, count: 2 }.holds(name))
                .count()
        };
        assert!(two(1) > 10 && two(2) > 10, "both halves hold specs");
    }

    #[test]
    fn a_spec_keeps_its_shard_when_others_are_added() {
        let shard = Shard { index: 2, count: 3 };
        let before = shard.holds("fizzbuzz");
        let _others: Vec<bool> = (0..100).map(|i| shard.holds(&format!("new-{i}"))).collect();
        assert_eq!(shard.holds("fizzbuzz"), before);
    }

    #[test]
    fn bad_shards_are_refused_with_the_form_expected() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/4", "5/4", "1/0", "x/2", "3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
