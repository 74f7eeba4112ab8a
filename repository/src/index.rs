//! The search index (tantivy): one document per business, derived from the stored
//! credentials and rebuilt from them by [`crate::Repository::reindex`].
//!
//! Names (the current and former legal names) are split into words, lower-cased and folded to
//! ASCII (`Éloïse` matches `eloise`); each word of a query matches a name word within one edit
//! (a typo, a missing or transposed letter; words under four letters exactly, the last word
//! also as a prefix), and every word must match. Business and corporation numbers match
//! exactly. Filters: corporate status, municipality, entity type. An active business ranks
//! above any other. Queries are words, never a query language: operators are plain text.

use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TantivyDocument, TextFieldIndexing, TextOptions, Value,
    STORED, STRING,
};
use tantivy::tokenizer::{AsciiFoldingFilter, LowerCaser, SimpleTokenizer, TextAnalyzer};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Term};

use crate::Error;

/// The analyzer of names.
const FOLDED: &str = "folded";
/// Heap of the index writer.
const WRITER_HEAP: usize = 128 * 1024 * 1024;
/// Most words a name query takes.
pub const MAX_QUERY_WORDS: usize = 8;

/// What a search result shows of a business (stored in the index: no store read per hit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The corporation number (or the business number of a business known by it only).
    pub subject: String,
    /// The current legal name.
    pub name: String,
    /// Former legal names, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub former_names: Vec<String>,
    /// The business number, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_number: Option<String>,
    /// `active`, `inactive`, `dissolved`, `amalgamated`.
    pub corporate_status: String,
    /// The entity type.
    pub entity_type: String,
    /// The registered office's municipality.
    pub municipality: String,
}

/// Search filters (exact values; `None`: any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// Corporate status.
    pub status: Option<String>,
    /// Municipality (compared folded).
    pub municipality: Option<String>,
    /// Entity type.
    pub entity_type: Option<String>,
}

struct Fields {
    subject: Field,
    bn: Field,
    name: Field,
    status: Field,
    municipality: Field,
    entity_type: Field,
    active: Field,
    summary: Field,
}

/// The index.
pub struct SearchIndex {
    reader: IndexReader,
    writer: Mutex<IndexWriter<TantivyDocument>>,
    f: Fields,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex").finish_non_exhaustive()
    }
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let names = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(FOLDED)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let f = Fields {
        subject: b.add_text_field("subject", STRING | STORED),
        bn: b.add_text_field("bn", STRING),
        name: b.add_text_field("name", names),
        status: b.add_text_field("status", STRING),
        municipality: b.add_text_field("municipality", STRING),
        entity_type: b.add_text_field("entity_type", STRING),
        active: b.add_text_field("active", STRING),
        summary: b.add_text_field("summary", STORED),
    };
    (b.build(), f)
}

/// Lower-cased and folded to ASCII, words joined by one space: how municipalities compare.
pub fn fold(s: &str) -> String {
    let mut a = analyzer();
    let mut ts = a.token_stream(s);
    let mut out = Vec::new();
    while ts.advance() {
        out.push(ts.token().text.clone());
    }
    out.join(" ")
}

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

impl SearchIndex {
    /// Opens the index in `dir` (created empty when absent).
    pub fn open(dir: &Path) -> Result<SearchIndex, Error> {
        std::fs::create_dir_all(dir).map_err(crate::io(dir))?;
        let (schema, f) = schema();
        let mmap = tantivy::directory::MmapDirectory::open(dir)
            .map_err(|e| Error::Index(e.to_string()))?;
        let index = Index::open_or_create(mmap, schema)?;
        index.tokenizers().register(FOLDED, analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let writer = index.writer(WRITER_HEAP)?;
        Ok(SearchIndex {
            reader,
            writer: Mutex::new(writer),
            f,
        })
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, IndexWriter<TantivyDocument>> {
        // The writer holds no state a panicking holder could leave half-changed that a
        // commit would make visible: recovered on purpose.
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces the documents of these businesses (not visible before [`SearchIndex::commit`]).
    pub fn put(&self, businesses: &[Summary]) -> Result<(), Error> {
        let w = self.writer();
        for b in businesses {
            w.delete_term(Term::from_field_text(self.f.subject, &b.subject));
            let mut d = TantivyDocument::default();
            d.add_text(self.f.subject, &b.subject);
            if let Some(bn) = &b.business_number {
                d.add_text(self.f.bn, bn);
            }
            d.add_text(self.f.name, &b.name);
            for n in &b.former_names {
                d.add_text(self.f.name, n);
            }
            d.add_text(self.f.status, &b.corporate_status);
            d.add_text(self.f.municipality, fold(&b.municipality));
            d.add_text(self.f.entity_type, &b.entity_type);
            d.add_text(
                self.f.active,
                if b.corporate_status == "active" {
                    "1"
                } else {
                    "0"
                },
            );
            d.add_text(
                self.f.summary,
                serde_json::to_string(b).map_err(crate::corrupt("summary"))?,
            );
            w.add_document(d)?;
        }
        Ok(())
    }

    /// Makes what was put searchable (durable in the index directory).
    pub fn commit(&self) -> Result<(), Error> {
        self.writer().commit()?;
        self.reader.reload()?;
        Ok(())
    }

    /// Empties the index (for a rebuild; visible at the next commit).
    pub fn clear(&self) -> Result<(), Error> {
        self.writer().delete_all_documents()?;
        Ok(())
    }

    /// Businesses indexed (as of the last commit).
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Whether none is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Searches: `words` (already checked) by name, or an exact number; `filters`; the page
    /// at `offset` of `limit`. Answers the total and the page.
    pub fn search(
        &self,
        words: &str,
        filters: &Filters,
        offset: usize,
        limit: usize,
    ) -> Result<(usize, Vec<Summary>), Error> {
        let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let digits: String = words.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            // A number: the business number or the corporation number, exactly.
            let mut either: Vec<(Occur, Box<dyn Query>)> = vec![(
                Occur::Should,
                Box::new(TermQuery::new(
                    Term::from_field_text(self.f.subject, &digits),
                    IndexRecordOption::Basic,
                )),
            )];
            if digits.len() == 9 {
                either.push((
                    Occur::Should,
                    Box::new(TermQuery::new(
                        Term::from_field_text(self.f.bn, &digits),
                        IndexRecordOption::Basic,
                    )),
                ));
            }
            must.push((Occur::Must, Box::new(BooleanQuery::new(either))));
        } else {
            let mut a = analyzer();
            let mut ts = a.token_stream(words);
            let mut terms = Vec::new();
            while ts.advance() {
                terms.push(ts.token().text.clone());
            }
            if terms.is_empty() {
                return Err(Error::Query("the query has no word to search for".into()));
            }
            if terms.len() > MAX_QUERY_WORDS {
                return Err(Error::Query(format!(
                    "the query has {} words; at most {MAX_QUERY_WORDS} are searched",
                    terms.len()
                )));
            }
            let last = terms.len() - 1;
            for (i, t) in terms.iter().enumerate() {
                let term = Term::from_field_text(self.f.name, t);
                let distance = if t.chars().count() >= 4 { 1 } else { 0 };
                let q: Box<dyn Query> = if i == last {
                    // The last word may be typed in part: a prefix, or the word itself.
                    Box::new(BooleanQuery::new(vec![
                        (
                            Occur::Should,
                            Box::new(FuzzyTermQuery::new(term.clone(), distance, true))
                                as Box<dyn Query>,
                        ),
                        (
                            Occur::Should,
                            Box::new(FuzzyTermQuery::new_prefix(term, 0, false)),
                        ),
                    ]))
                } else {
                    Box::new(FuzzyTermQuery::new(term, distance, true))
                };
                must.push((Occur::Must, q));
            }
        }
        let filter = |field: Field, v: &Option<String>| {
            v.as_ref().map(|v| {
                (
                    Occur::Must,
                    Box::new(TermQuery::new(
                        Term::from_field_text(field, v),
                        IndexRecordOption::Basic,
                    )) as Box<dyn Query>,
                )
            })
        };
        must.extend(filter(self.f.status, &filters.status));
        must.extend(filter(
            self.f.municipality,
            &filters.municipality.as_deref().map(fold),
        ));
        must.extend(filter(self.f.entity_type, &filters.entity_type));
        // Active businesses first: a boost no text score reaches.
        must.push((
            Occur::Should,
            Box::new(BoostQuery::new(
                Box::new(TermQuery::new(
                    Term::from_field_text(self.f.active, "1"),
                    IndexRecordOption::Basic,
                )),
                1000.0,
            )),
        ));
        let query = BooleanQuery::new(must);
        let searcher = self.reader.searcher();
        let (top, total) = searcher.search(
            &query,
            &(
                TopDocs::with_limit(limit.max(1))
                    .and_offset(offset)
                    .order_by_score(),
                Count,
            ),
        )?;
        let mut out = Vec::with_capacity(top.len());
        for (_, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let text = doc
                .get_first(self.f.summary)
                .and_then(|v| v.as_str())
                .ok_or_else(|| Error::Corrupt {
                    what: "index summary",
                    cause: "missing".into(),
                })?;
            out.push(serde_json::from_str(text).map_err(crate::corrupt("index summary"))?);
        }
        Ok((total, out))
    }
}

/// Most municipalities [`SearchIndex::municipalities`] lists.
pub const MAX_MUNICIPALITIES: usize = 2_000;

impl SearchIndex {
    /// The municipalities of the indexed businesses, each as one of them writes it, sorted
    /// (the search page's filter): one term query per distinct folded municipality, at most
    /// [`MAX_MUNICIPALITIES`].
    pub fn municipalities(&self) -> Result<Vec<String>, Error> {
        let searcher = self.reader.searcher();
        let mut folded = std::collections::BTreeSet::new();
        for segment in searcher.segment_readers() {
            let inverted = segment.inverted_index(self.f.municipality)?;
            let mut terms = inverted
                .terms()
                .stream()
                .map_err(|e| Error::Index(e.to_string()))?;
            while terms.advance() && folded.len() < MAX_MUNICIPALITIES {
                if let Ok(t) = std::str::from_utf8(terms.key()) {
                    if !t.is_empty() {
                        folded.insert(t.to_owned());
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(folded.len());
        for f in folded {
            let q = TermQuery::new(
                Term::from_field_text(self.f.municipality, &f),
                IndexRecordOption::Basic,
            );
            // Terms of deleted documents find nothing and are skipped.
            if let Some((_, addr)) = searcher
                .search(&q, &TopDocs::with_limit(1).order_by_score())?
                .first()
            {
                let doc: TantivyDocument = searcher.doc(*addr)?;
                if let Some(s) = doc
                    .get_first(self.f.summary)
                    .and_then(|v| v.as_str())
                    .and_then(|t| serde_json::from_str::<Summary>(t).ok())
                {
                    out.push(s.municipality);
                }
            }
        }
        out.sort_by_key(|m| fold(m));
        out.dedup();
        Ok(out)
    }
}
