//! The regulator's three questions against the PostgreSQL log, across every node: the same
//! answers as [`crate::AuditReader`], each record naming its node.

use deadpool_postgres::Pool;
use headwall_identity::Msisdn;
use headwall_policy::{Policy, StoreTls};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{describe, describe_pool};
use crate::query::{
    Decisions, DisclosureView, ExposedSubscriber, ExposureFilter, ExposureRow, Shape, TimeRange,
    Unallowed, exposed_subscribers_sql,
};
use crate::record::DisclosureRow;
use crate::time::format_rfc3339;

/// Rows fetched per round trip when scanning.
const FETCH: i32 = 5_000;

/// An audit query that failed: what failed, never record content.
#[derive(Debug, thiserror::Error)]
#[error("audit query failed: {0}")]
pub struct QueryError(String);

/// Read access to the PostgreSQL log of the whole fleet. Queries run in read-only
/// transactions, so a role with `SELECT` only is enough.
pub struct PgAuditReader {
    pool: Pool,
}

/// The columns of a disclosure, node first, in [`disclosure_row`]'s order.
pub(crate) const COLUMNS: &str = "node, id, ts, request_id, partner, purpose, msisdn, kinds, \
                                  headers, host, port, upstream_ip, client_ip, policy_hash, \
                                  prev_hash, hash";

impl PgAuditReader {
    /// Connects to the log at `url` and checks that a gateway created its schema.
    pub async fn open(url: &str, tls: &StoreTls) -> Result<PgAuditReader, String> {
        let target = super::Target::parse(url, tls)
            .map_err(|reason| format!("[audit].url: {}", crate::Causes(&reason)))?;
        let fail = |reason: String| {
            format!(
                "{}: cannot open the PostgreSQL audit log: {reason}",
                target.shown
            )
        };
        let pool = target
            .pool(2, None)
            .map_err(|error| fail(crate::Causes(&error).to_string()))?;
        let client = pool
            .get()
            .await
            .map_err(|error| fail(describe_pool(&error)))?;
        match super::migrate::schema_version(&client).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(fail(
                    "no headwall audit schema in this database (check [audit].url; the first \
                     gateway started with backend = \"postgres\" creates it)"
                        .into(),
                ));
            }
            Err(error) => return Err(fail(describe(&error))),
        }
        drop(client);
        Ok(PgAuditReader { pool })
    }

    /// Every disclosure of `msisdn` in `range` on any node, oldest first (data-subject
    /// access).
    pub async fn subscriber(
        &self,
        msisdn: &Msisdn,
        range: TimeRange,
    ) -> Result<Vec<DisclosureView>, QueryError> {
        let mut query = Conditions::default();
        query.push("msisdn", Box::new(msisdn.expose_digits().to_owned()));
        query.range(range);
        let mut found = Vec::new();
        self.scan(&query, |row| {
            let (node, record) = disclosure_row(row)?;
            found.push(view(node, record));
            Ok(true)
        })
        .await?;
        Ok(found)
    }

    /// Distinct subscribers and records per (partner, host), over every node.
    pub async fn exposure(&self, filter: &ExposureFilter) -> Result<Vec<ExposureRow>, QueryError> {
        let query = Conditions::of(filter);
        let sql = format!(
            "SELECT partner, host, COUNT(DISTINCT msisdn), COUNT(*), MIN(ts), MAX(ts)
             FROM disclosures {} GROUP BY partner, host
             ORDER BY partner COLLATE \"C\", host COLLATE \"C\"",
            query.where_clause()
        );
        let client = self.client().await?;
        let rows = client
            .query(&sql, &query.params())
            .await
            .map_err(query_error)?;
        rows.iter()
            .map(|row| {
                Ok(ExposureRow {
                    partner: row.try_get(0)?,
                    host: row.try_get(1)?,
                    subscribers: row.try_get(2)?,
                    disclosures: row.try_get(3)?,
                    first: format_rfc3339(row.try_get(4)?),
                    last: format_rfc3339(row.try_get(5)?),
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(query_error)
    }

    /// The disclosures in `filter`, on any node, that `policy` would not have allowed (see
    /// [`crate::AuditReader::against`]). Collects the whole answer: prefer
    /// [`PgAuditReader::against_each`].
    pub async fn against(
        &self,
        policy: &Policy,
        filter: &ExposureFilter,
    ) -> Result<Vec<Unallowed>, QueryError> {
        let mut found = Vec::new();
        self.against_each(policy, filter, |unallowed| {
            found.push(unallowed);
            true
        })
        .await?;
        Ok(found)
    }

    /// [`PgAuditReader::against`], streamed (see [`crate::AuditReader::against_each`]): rows
    /// arrive a few thousand at a time, the policy is asked once per record shape, and `visit`
    /// returns `false` to stop.
    pub async fn against_each(
        &self,
        policy: &Policy,
        filter: &ExposureFilter,
        mut visit: impl FnMut(Unallowed) -> bool,
    ) -> Result<(), QueryError> {
        let query = Conditions::of(filter);
        let mut decisions = Decisions::default();
        self.scan(&query, |row| {
            let text = |column: usize| -> Result<&str, String> {
                row.try_get::<_, &str>(column)
                    .map_err(|error| describe(&error))
            };
            let port: i32 = row.try_get(10).map_err(|error| describe(&error))?;
            let verdict = decisions.decide(
                policy,
                Shape {
                    partner: text(4)?,
                    host: text(9)?,
                    port: u16::try_from(port).unwrap_or(0),
                    upstream_ip: text(11)?,
                    headers: text(8)?,
                    kinds: text(7)?,
                },
            );
            match verdict {
                Ok(()) => Ok(true),
                Err(reason) => {
                    let (node, record) = disclosure_row(row)?;
                    Ok(visit(Unallowed {
                        record: view(node, record),
                        reason,
                    }))
                }
            }
        })
        .await
    }

    /// The distinct subscribers per (partner, host) over every node, streamed (see
    /// [`crate::AuditReader::exposed_subscribers_each`]).
    pub async fn exposed_subscribers_each(
        &self,
        filter: &ExposureFilter,
        mut visit: impl FnMut(ExposedSubscriber) -> bool,
    ) -> Result<(), QueryError> {
        let query = Conditions::of(filter);
        let sql = exposed_subscribers_sql(&query.where_clause(), " COLLATE \"C\"");
        self.scan_sql(&sql, &query, |row| {
            let read = |error: tokio_postgres::Error| describe(&error);
            Ok(visit(ExposedSubscriber {
                partner: row.try_get(0).map_err(read)?,
                host: row.try_get(1).map_err(read)?,
                msisdn: row.try_get(2).map_err(read)?,
                disclosures: row.try_get(3).map_err(read)?,
                first: format_rfc3339(row.try_get(4).map_err(read)?),
                last: format_rfc3339(row.try_get(5).map_err(read)?),
            }))
        })
        .await
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, QueryError> {
        self.pool
            .get()
            .await
            .map_err(|error| QueryError(describe_pool(&error)))
    }

    /// Visits the matching disclosures in time order, fetched a few thousand at a time, until
    /// `visit` returns `false`.
    async fn scan(
        &self,
        query: &Conditions,
        visit: impl FnMut(&Row) -> Result<bool, String>,
    ) -> Result<(), QueryError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM disclosures {} ORDER BY ts, node COLLATE \"C\", id",
            query.where_clause()
        );
        self.scan_sql(&sql, query, visit).await
    }

    /// Visits the rows of `sql` (over `query`'s parameters) in a read-only transaction, fetched
    /// a few thousand at a time, until `visit` returns `false`.
    async fn scan_sql(
        &self,
        sql: &str,
        query: &Conditions,
        mut visit: impl FnMut(&Row) -> Result<bool, String>,
    ) -> Result<(), QueryError> {
        let mut client = self.client().await?;
        let transaction = client
            .build_transaction()
            .read_only(true)
            .start()
            .await
            .map_err(query_error)?;
        let statement = transaction.prepare(sql).await.map_err(query_error)?;
        let portal = transaction
            .bind(&statement, &query.params())
            .await
            .map_err(query_error)?;
        loop {
            let rows = transaction
                .query_portal(&portal, FETCH)
                .await
                .map_err(query_error)?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                if !visit(row).map_err(QueryError)? {
                    return transaction.commit().await.map_err(query_error);
                }
            }
        }
        transaction.commit().await.map_err(query_error)
    }
}

/// A `disclosures` row read with [`COLUMNS`]: its node and the record. The error names the
/// column and record, never a value.
pub(crate) fn disclosure_row(row: &Row) -> Result<(String, DisclosureRow), String> {
    let read = |error: tokio_postgres::Error| describe(&error);
    let node: String = row.try_get(0).map_err(read)?;
    let id: i64 = row.try_get(1).map_err(read)?;
    let port: i32 = row.try_get(10).map_err(read)?;
    let Ok(port) = u16::try_from(port) else {
        return Err(format!(
            "disclosures record {id} of node {node}: port {port} is not a TCP port"
        ));
    };
    let record = DisclosureRow {
        id,
        ts: row.try_get(2).map_err(read)?,
        request_id: row.try_get(3).map_err(read)?,
        partner: row.try_get(4).map_err(read)?,
        purpose: row.try_get(5).map_err(read)?,
        msisdn: row.try_get(6).map_err(read)?,
        kinds: row.try_get(7).map_err(read)?,
        headers: row.try_get(8).map_err(read)?,
        host: row.try_get(9).map_err(read)?,
        port,
        upstream_ip: row.try_get(11).map_err(read)?,
        client_ip: row.try_get(12).map_err(read)?,
        policy_hash: row.try_get(13).map_err(read)?,
        prev_hash: row.try_get(14).map_err(read)?,
        hash: row.try_get(15).map_err(read)?,
    };
    Ok((node, record))
}

fn view(node: String, row: DisclosureRow) -> DisclosureView {
    let mut view = DisclosureView::from(row);
    view.node = Some(node);
    view
}

fn query_error(error: tokio_postgres::Error) -> QueryError {
    QueryError(describe(&error))
}

/// A `WHERE` clause with numbered placeholders and their values.
#[derive(Default)]
struct Conditions {
    clauses: Vec<String>,
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Conditions {
    fn of(filter: &ExposureFilter) -> Conditions {
        let mut conditions = Conditions::default();
        if let Some(partner) = &filter.partner {
            conditions.push("partner", Box::new(partner.clone()));
        }
        if let Some(host) = &filter.host {
            conditions.push("host", Box::new(host.clone()));
        }
        conditions.range(filter.range);
        conditions
    }

    fn push(&mut self, column: &str, value: Box<dyn ToSql + Sync + Send>) {
        self.values.push(value);
        self.clauses
            .push(format!("{column} = ${}", self.values.len()));
    }

    fn range(&mut self, range: TimeRange) {
        if let Some(from) = range.from {
            self.values.push(Box::new(from));
            self.clauses.push(format!("ts >= ${}", self.values.len()));
        }
        if let Some(to) = range.to {
            self.values.push(Box::new(to));
            self.clauses.push(format!("ts < ${}", self.values.len()));
        }
    }

    fn where_clause(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|value| &**value as &(dyn ToSql + Sync))
            .collect()
    }
}
