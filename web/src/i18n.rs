//! English and French for every page. A catalogue is data (TOML files, one per language, a table
//! per page); a service joins the shared catalogue with its own. A key missing in one language
//! is an error when the catalogue is built, so a page can never show one language's text in the
//! other's place; a key no catalogue has renders visibly as `⟦key⟧` and is logged (the browser
//! tests look for it), never as an empty string.

use std::collections::BTreeMap;
use std::sync::Arc;

/// A language of the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    /// English (Canada).
    En,
    /// French (Canada).
    Fr,
}

impl Lang {
    /// Both, in the order pages offer them.
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Fr];

    /// The short code used in the language cookie and switch (`en`, `fr`).
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
        }
    }

    /// The BCP 47 tag of the page (`en-CA`, `fr-CA`), also the key of type-metadata labels.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en-CA",
            Lang::Fr => "fr-CA",
        }
    }

    /// The other language (what the switch offers).
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Fr,
            Lang::Fr => Lang::En,
        }
    }

    /// `en` or `fr`, exactly.
    pub fn from_code(s: &str) -> Option<Lang> {
        match s {
            "en" => Some(Lang::En),
            "fr" => Some(Lang::Fr),
            _ => None,
        }
    }

    /// The preferred of English and French in an `Accept-Language` header (by quality, then
    /// order); `None` when it names neither.
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        let mut best: Option<(f32, usize, Lang)> = None;
        for (i, part) in header.split(',').enumerate().take(32) {
            let mut fields = part.split(';');
            let tag = fields.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = fields
                .filter_map(|f| f.trim().strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            let Some(lang) = Lang::from_code(primary) else {
                continue;
            };
            if q <= 0.0 {
                continue;
            }
            if best.is_none_or(|(bq, bi, _)| q > bq || (q == bq && i < bi)) {
                best = Some((q, i, lang));
            }
        }
        best.map(|(_, _, l)| l)
    }
}

/// Why a catalogue could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A file is not TOML of string tables.
    #[error("catalogue {name} ({lang}): {cause}")]
    Parse {
        /// The catalogue's name.
        name: String,
        /// Its language.
        lang: &'static str,
        /// Why.
        cause: String,
    },
    /// A key is in one language and not the other.
    #[error("catalogue {name}: {key} is in {has} but missing in {lacks}")]
    Missing {
        /// The catalogue's name.
        name: String,
        /// The key.
        key: String,
        /// The language that has it.
        has: &'static str,
        /// The language that lacks it.
        lacks: &'static str,
    },
    /// Two catalogues define the same key.
    #[error("key {key} is defined twice (in {name} and before it)")]
    Duplicate {
        /// The second catalogue.
        name: String,
        /// The key.
        key: String,
    },
}

/// One catalogue's sources: its name and the English and French TOML texts.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    /// A name for errors (`web`, `issuer-desk`).
    pub name: &'static str,
    /// English TOML.
    pub en: &'static str,
    /// French TOML.
    pub fr: &'static str,
}

/// The shared catalogue every page uses (layout, sign-in, errors).
pub const SHARED: Source = Source {
    name: "web",
    en: include_str!("../i18n/en.toml"),
    fr: include_str!("../i18n/fr.toml"),
};

/// The messages of both languages, keyed `table.key`.
#[derive(Debug)]
pub struct Catalog {
    en: BTreeMap<String, String>,
    fr: BTreeMap<String, String>,
}

fn flatten(
    prefix: &str,
    v: &toml::Value,
    out: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    match v {
        toml::Value::String(s) => {
            out.insert(prefix.to_owned(), s.clone());
            Ok(())
        }
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out)?;
            }
            Ok(())
        }
        _ => Err(format!("{prefix} is not a string or a table")),
    }
}

impl Catalog {
    /// Joins catalogues; every key must be in both languages and in one catalogue only.
    pub fn new(sources: &[Source]) -> Result<Catalog, CatalogError> {
        let mut en = BTreeMap::new();
        let mut fr = BTreeMap::new();
        for s in sources {
            let parse = |text: &str, lang: &'static str| {
                let v: toml::Value = toml::from_str(text).map_err(|e| CatalogError::Parse {
                    name: s.name.to_owned(),
                    lang,
                    cause: e.to_string(),
                })?;
                let mut m = BTreeMap::new();
                flatten("", &v, &mut m).map_err(|cause| CatalogError::Parse {
                    name: s.name.to_owned(),
                    lang,
                    cause,
                })?;
                Ok::<_, CatalogError>(m)
            };
            let e = parse(s.en, "en")?;
            let f = parse(s.fr, "fr")?;
            for (a, b, has, lacks) in [(&e, &f, "en", "fr"), (&f, &e, "fr", "en")] {
                if let Some(key) = a.keys().find(|k| !b.contains_key(*k)) {
                    return Err(CatalogError::Missing {
                        name: s.name.to_owned(),
                        key: key.clone(),
                        has,
                        lacks,
                    });
                }
            }
            for (k, v) in e {
                if en.insert(k.clone(), v).is_some() {
                    return Err(CatalogError::Duplicate {
                        name: s.name.to_owned(),
                        key: k,
                    });
                }
            }
            fr.extend(f);
        }
        Ok(Catalog { en, fr })
    }

    /// The message for `key` in `lang`, if the catalogue has it.
    pub fn lookup(&self, lang: Lang, key: &str) -> Option<&str> {
        match lang {
            Lang::En => self.en.get(key),
            Lang::Fr => self.fr.get(key),
        }
        .map(String::as_str)
    }

    /// Every key (the same in both languages).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.en.keys().map(String::as_str)
    }
}

/// The translator a template holds: a catalogue and the page's language.
#[derive(Debug, Clone)]
pub struct Tr {
    /// The page's language.
    pub lang: Lang,
    catalog: Arc<Catalog>,
}

impl Tr {
    /// A translator for `lang`.
    pub fn new(catalog: Arc<Catalog>, lang: Lang) -> Tr {
        Tr { lang, catalog }
    }

    /// The message for `key`; a key no catalogue has shows as `⟦key⟧` (and is logged).
    pub fn get(&self, key: &str) -> String {
        match self.catalog.lookup(self.lang, key) {
            Some(s) => s.to_owned(),
            None => {
                tracing::error!(key, "a page asked for a message no catalogue has");
                format!("⟦{key}⟧")
            }
        }
    }

    /// The message for `key` when the catalogue has one: for messages a page may have or not
    /// (a sentence for a reason code), where a missing key is no mistake and is not logged.
    pub fn optional(&self, key: &str) -> Option<String> {
        self.catalog.lookup(self.lang, key).map(str::to_owned)
    }

    /// The message for `key` with `{name}` placeholders replaced.
    pub fn fill(&self, key: &str, args: &[(&str, &str)]) -> String {
        let mut s = self.get(key);
        for (k, v) in args {
            s = s.replace(&format!("{{{k}}}"), v);
        }
        s
    }

    /// The label of a staff role (`role.{name}`).
    pub fn role(&self, name: &str) -> String {
        self.get(&format!("role.{name}"))
    }

    /// A Unix time for the page's locale: `2026-11-30 14:05 UTC` in English,
    /// `2026-11-30 14 h 05 UTC` in French (the Canadian conventions for each).
    pub fn time(&self, t: i64) -> String {
        let iso = bizcred_core::time::format_utc(t);
        // `YYYY-MM-DDTHH:MM:SSZ`
        let (date, rest) = iso.split_once('T').unwrap_or((&iso, ""));
        let hh = rest.get(0..2).unwrap_or("00");
        let mm = rest.get(3..5).unwrap_or("00");
        match self.lang {
            Lang::En => format!("{date} {hh}:{mm} UTC"),
            Lang::Fr => format!("{date} {hh} h {mm} UTC"),
        }
    }

    /// An age in whole minutes, hours or days, in words.
    pub fn age(&self, seconds: i64) -> String {
        let s = seconds.max(0);
        let (n, unit) = if s < 3600 {
            (s / 60, "time.minutes")
        } else if s < 86_400 {
            (s / 3600, "time.hours")
        } else {
            (s / 86_400, "time.days")
        };
        self.fill(unit, &[("n", &n.to_string())])
    }

    /// An integer with the locale's digit grouping (`12,345` / `12 345`).
    pub fn number(&self, n: u64) -> String {
        let digits = n.to_string();
        let sep = match self.lang {
            Lang::En => ",",
            Lang::Fr => "\u{202f}",
        };
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push_str(sep);
            }
            out.push(c);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_catalogue_is_complete_in_both_languages() {
        let c = Catalog::new(&[SHARED]).expect("complete");
        assert!(c.keys().count() > 10);
    }

    #[test]
    fn a_key_missing_in_one_language_is_an_error() {
        let s = Source {
            name: "t",
            en: "[a]\nx = \"X\"\ny = \"Y\"\n",
            fr: "[a]\nx = \"X\"\n",
        };
        match Catalog::new(&[s]) {
            Err(CatalogError::Missing { key, lacks, .. }) => {
                assert_eq!(key, "a.y");
                assert_eq!(lacks, "fr");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn accept_language_prefers_by_quality() {
        assert_eq!(
            Lang::from_accept_language("fr-CA,fr;q=0.9,en;q=0.8"),
            Some(Lang::Fr)
        );
        assert_eq!(
            Lang::from_accept_language("de, en;q=0.5, fr;q=0.4"),
            Some(Lang::En)
        );
        assert_eq!(Lang::from_accept_language("de"), None);
        assert_eq!(
            Lang::from_accept_language("fr;q=0, en;q=0.1"),
            Some(Lang::En)
        );
    }

    #[test]
    fn locale_formats() {
        let c = Arc::new(Catalog::new(&[SHARED]).expect("complete"));
        let en = Tr::new(c.clone(), Lang::En);
        let fr = Tr::new(c, Lang::Fr);
        assert_eq!(en.number(1234567), "1,234,567");
        assert_eq!(fr.number(1234567), "1\u{202f}234\u{202f}567");
        assert_eq!(en.time(0), "1970-01-01 00:00 UTC");
        assert_eq!(fr.time(3600 + 5 * 60), "1970-01-01 01 h 05 UTC");
        assert_eq!(en.get("no.such.key"), "⟦no.such.key⟧");
    }
}
