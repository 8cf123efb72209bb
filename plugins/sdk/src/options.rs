//! Option parsing for plugins: `key = value` strings checked against the plugin's own specs.

use crate::{Error, OptionSpec, Result};

/// Options a plugin was given, checked against its specs: every key is known, none repeats.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pairs: Vec<(String, String)>,
}

impl Options {
    /// Checks `pairs` against `specs`: unknown or repeated keys are `InvalidOptions`.
    pub fn parse(pairs: &[(String, String)], specs: &[OptionSpec]) -> Result<Options> {
        for (i, (key, _)) in pairs.iter().enumerate() {
            if !specs.iter().any(|s| s.name == *key) {
                let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
                return Err(Error::InvalidOptions(if known.is_empty() {
                    format!("unknown option `{key}`: this plugin takes no options")
                } else {
                    format!("unknown option `{key}` (known: {})", known.join(", "))
                }));
            }
            if pairs[..i].iter().any(|(k, _)| k == key) {
                return Err(Error::InvalidOptions(format!("option `{key}` given twice")));
            }
        }
        Ok(Options {
            pairs: pairs.to_vec(),
        })
    }

    /// Builds options from literal pairs without checking them (for tests and host code).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Options {
        Options {
            pairs: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The raw pairs.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The raw value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
    }

    /// An integer option within `min..=max`, or `default` when absent.
    pub fn int(&self, key: &str, min: i64, max: i64, default: i64) -> Result<i64> {
        let Some(raw) = self.get(key) else {
            return Ok(default);
        };
        let v: i64 = raw.parse().map_err(|_| {
            Error::InvalidOptions(format!("option `{key}`: `{raw}` is not an integer"))
        })?;
        if !(min..=max).contains(&v) {
            return Err(Error::InvalidOptions(format!(
                "option `{key}`: {v} is out of range {min}..={max}"
            )));
        }
        Ok(v)
    }

    /// A boolean option (`true`/`false`), or `default` when absent.
    pub fn flag(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(raw) => Err(Error::InvalidOptions(format!(
                "option `{key}`: `{raw}` is not `true` or `false`"
            ))),
        }
    }

    /// One of `choices`, or `default` when absent. Returns the index into `choices`.
    pub fn choice(&self, key: &str, choices: &[&str], default: usize) -> Result<usize> {
        let Some(raw) = self.get(key) else {
            return Ok(default);
        };
        choices.iter().position(|c| *c == raw).ok_or_else(|| {
            Error::InvalidOptions(format!(
                "option `{key}`: `{raw}` is not one of {}",
                choices.join(" | ")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> Vec<OptionSpec> {
        vec![OptionSpec::new(
            "level",
            "integer 0..=9",
            "6",
            "compression level",
        )]
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn rejects_unknown_and_repeated_keys() {
        let err = Options::parse(&pairs(&[("levle", "3")]), &specs()).unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown option `levle` (known: level)")
        );
        let err = Options::parse(&pairs(&[("level", "3"), ("level", "4")]), &specs()).unwrap_err();
        assert!(err.to_string().contains("given twice"));
    }

    #[test]
    fn typed_getters_check_ranges() {
        let o = Options::parse(&pairs(&[("level", "12")]), &specs()).unwrap();
        assert!(
            o.int("level", 0, 9, 6)
                .unwrap_err()
                .to_string()
                .contains("out of range")
        );
        let o = Options::parse(&pairs(&[("level", " 3 ")]), &specs()).unwrap();
        assert_eq!(o.int("level", 0, 9, 6).unwrap(), 3);
        assert_eq!(Options::default().int("level", 0, 9, 6).unwrap(), 6);
        let o = Options::from_pairs([("mode", "fast"), ("on", "yes")]);
        assert_eq!(o.choice("mode", &["slow", "fast"], 0).unwrap(), 1);
        assert!(o.flag("on", false).is_err());
    }
}
