//! Decoding of `pgoutput` change messages (protocol version 1, text values): the relation,
//! insert, update, delete and truncate messages that `pgwire-replication` hands over as raw
//! bytes (it decodes only the begin/commit boundaries itself). Every read is bounds-checked:
//! any byte string decodes to a message or an error, never a panic.

/// A column of a relation, as the `Relation` message describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type's OID.
    pub type_oid: u32,
    /// Whether it is part of the replica identity (the key sent with updates and deletes).
    pub identity: bool,
}

/// A table, as the `Relation` message describes it (sent before the first change of a table in
/// each session and after every change of its definition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// The table's OID.
    pub id: u32,
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub name: String,
    /// Its `REPLICA IDENTITY`: `d` default (primary key), `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    /// Its columns in order.
    pub columns: Vec<Column>,
}

/// One column's value in a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datum {
    /// SQL NULL.
    Null,
    /// A TOASTed value that did not change (not sent).
    Unchanged,
    /// The value in PostgreSQL's text output format.
    Text(String),
    /// The value in binary format (not requested by this connector).
    Binary(Vec<u8>),
}

/// A change message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A table's description.
    Relation(Relation),
    /// A new row.
    Insert {
        /// The table's OID.
        relation: u32,
        /// The row.
        new: Vec<Datum>,
    },
    /// A changed row: `old` is the old key (`K`) or the whole old row (`O`, with
    /// `REPLICA IDENTITY FULL`), when sent.
    Update {
        /// The table's OID.
        relation: u32,
        /// The old key or row.
        old: Option<Vec<Datum>>,
        /// The new row.
        new: Vec<Datum>,
    },
    /// A deleted row: its key (`K`) or its whole row (`O`).
    Delete {
        /// The table's OID.
        relation: u32,
        /// The old key or row.
        old: Vec<Datum>,
    },
    /// Tables emptied by `TRUNCATE`.
    Truncate {
        /// The tables' OIDs.
        relations: Vec<u32>,
    },
    /// Anything else (`Begin`/`Commit` are decoded by the replication client; `Origin`,
    /// `Type` and logical messages are not needed here).
    Other(u8),
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pgoutput: {}", self.0)
    }
}

/// A cursor over a message's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError(format!("truncated {what}")));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, DecodeError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn cstr(&mut self, what: &str) -> Result<String, DecodeError> {
        let end = self
            .bytes
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| DecodeError(format!("{what} has no terminating zero")))?;
        let s = self.take(end, what)?;
        self.take(1, what)?;
        Ok(String::from_utf8_lossy(s).into_owned())
    }
}

/// Decodes one change message.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader { bytes };
    let tag = r.u8("message tag")?;
    match tag {
        b'R' => relation(&mut r).map(Message::Relation),
        b'I' => {
            let relation = r.u32("relation id")?;
            expect(&mut r, b'N')?;
            Ok(Message::Insert {
                relation,
                new: tuple(&mut r)?,
            })
        }
        b'U' => update(&mut r),
        b'D' => {
            let relation = r.u32("relation id")?;
            match r.u8("tuple kind")? {
                b'K' | b'O' => Ok(Message::Delete {
                    relation,
                    old: tuple(&mut r)?,
                }),
                other => Err(DecodeError(format!("unexpected tuple kind {other:#04x} in delete"))),
            }
        }
        b'T' => truncate(&mut r),
        other => Ok(Message::Other(other)),
    }
}

fn expect(r: &mut Reader<'_>, kind: u8) -> Result<(), DecodeError> {
    match r.u8("tuple kind")? {
        k if k == kind => Ok(()),
        other => Err(DecodeError(format!(
            "expected tuple kind '{}', found {other:#04x}",
            kind as char
        ))),
    }
}

fn relation(r: &mut Reader<'_>) -> Result<Relation, DecodeError> {
    let id = r.u32("relation id")?;
    let schema = r.cstr("schema name")?;
    let name = r.cstr("table name")?;
    let replica_identity = r.u8("replica identity")?;
    let count = r.u16("column count")?;
    let mut columns = Vec::with_capacity(usize::from(count).min(r.bytes.len()));
    for _ in 0..count {
        let flags = r.u8("column flags")?;
        let name = r.cstr("column name")?;
        let type_oid = r.u32("column type")?;
        let _typmod = r.u32("column type modifier")?;
        columns.push(Column {
            name,
            type_oid,
            identity: flags & 1 == 1,
        });
    }
    Ok(Relation {
        id,
        schema,
        name,
        replica_identity,
        columns,
    })
}

fn update(r: &mut Reader<'_>) -> Result<Message, DecodeError> {
    let relation = r.u32("relation id")?;
    let mut old = None;
    let mut kind = r.u8("tuple kind")?;
    if kind == b'K' || kind == b'O' {
        old = Some(tuple(r)?);
        kind = r.u8("tuple kind")?;
    }
    if kind != b'N' {
        return Err(DecodeError(format!("unexpected tuple kind {kind:#04x} in update")));
    }
    Ok(Message::Update {
        relation,
        old,
        new: tuple(r)?,
    })
}

fn truncate(r: &mut Reader<'_>) -> Result<Message, DecodeError> {
    let count = r.u32("relation count")?;
    let _options = r.u8("truncate options")?;
    let mut relations = Vec::with_capacity((count as usize).min(r.bytes.len() / 4));
    for _ in 0..count {
        relations.push(r.u32("relation id")?);
    }
    Ok(Message::Truncate { relations })
}

fn tuple(r: &mut Reader<'_>) -> Result<Vec<Datum>, DecodeError> {
    let count = r.u16("tuple column count")?;
    let mut out = Vec::with_capacity(usize::from(count).min(r.bytes.len()));
    for _ in 0..count {
        let datum = match r.u8("column kind")? {
            b'n' => Datum::Null,
            b'u' => Datum::Unchanged,
            kind @ (b't' | b'b') => {
                let len = r.u32("value length")? as usize;
                let bytes = r.take(len, "value")?;
                if kind == b't' {
                    Datum::Text(String::from_utf8_lossy(bytes).into_owned())
                } else {
                    Datum::Binary(bytes.to_vec())
                }
            }
            other => return Err(DecodeError(format!("unknown column kind {other:#04x}"))),
        };
        out.push(datum);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A relation message for `public.t (id int4 key, name text)`.
    fn relation_bytes() -> Vec<u8> {
        let mut b = vec![b'R'];
        b.extend(16_384u32.to_be_bytes());
        b.extend(b"public\0t\0d");
        b.extend(2u16.to_be_bytes());
        b.push(1);
        b.extend(b"id\0");
        b.extend(23u32.to_be_bytes());
        b.extend((-1i32).to_be_bytes());
        b.push(0);
        b.extend(b"name\0");
        b.extend(25u32.to_be_bytes());
        b.extend((-1i32).to_be_bytes());
        b
    }

    fn tuple_bytes(values: &[Option<&str>]) -> Vec<u8> {
        let mut b = (values.len() as u16).to_be_bytes().to_vec();
        for v in values {
            match v {
                None => b.push(b'n'),
                Some(s) => {
                    b.push(b't');
                    b.extend((s.len() as u32).to_be_bytes());
                    b.extend(s.as_bytes());
                }
            }
        }
        b
    }

    #[test]
    fn decodes_a_relation() {
        let Message::Relation(r) = decode(&relation_bytes()).unwrap() else {
            panic!("not a relation");
        };
        assert_eq!((r.id, r.schema.as_str(), r.name.as_str()), (16_384, "public", "t"));
        assert_eq!(r.replica_identity, b'd');
        assert_eq!(r.columns.len(), 2);
        assert!(r.columns[0].identity && !r.columns[1].identity);
        assert_eq!(r.columns[1].type_oid, 25);
    }

    #[test]
    fn decodes_insert_update_delete() {
        let mut insert = vec![b'I'];
        insert.extend(7u32.to_be_bytes());
        insert.push(b'N');
        insert.extend(tuple_bytes(&[Some("1"), None]));
        assert_eq!(
            decode(&insert).unwrap(),
            Message::Insert {
                relation: 7,
                new: vec![Datum::Text("1".into()), Datum::Null]
            }
        );
        let mut update = vec![b'U'];
        update.extend(7u32.to_be_bytes());
        update.push(b'K');
        update.extend(tuple_bytes(&[Some("1"), None]));
        update.push(b'N');
        update.extend(tuple_bytes(&[Some("2"), Some("x")]));
        let Message::Update { old, new, .. } = decode(&update).unwrap() else {
            panic!("not an update");
        };
        assert_eq!(old.unwrap()[0], Datum::Text("1".into()));
        assert_eq!(new[1], Datum::Text("x".into()));
        let mut delete = vec![b'D'];
        delete.extend(7u32.to_be_bytes());
        delete.push(b'O');
        delete.extend(tuple_bytes(&[Some("2"), Some("x")]));
        assert!(matches!(decode(&delete).unwrap(), Message::Delete { relation: 7, .. }));
    }

    #[test]
    fn truncated_messages_are_errors() {
        let bytes = relation_bytes();
        for end in 1..bytes.len() {
            assert!(decode(&bytes[..end]).is_err(), "prefix of {end} bytes decoded");
        }
        let mut insert = vec![b'I'];
        insert.extend(7u32.to_be_bytes());
        insert.push(b'N');
        insert.extend(1u16.to_be_bytes());
        insert.push(b't');
        insert.extend(u32::MAX.to_be_bytes());
        assert!(decode(&insert).unwrap_err().0.contains("truncated value"));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn never_panics_on_arbitrary_bodies(
            tag in prop::sample::select(vec![b'R', b'I', b'U', b'D', b'T']),
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut bytes = vec![tag];
            bytes.extend(body);
            let _ = decode(&bytes);
        }

        #[test]
        fn text_tuples_round_trip(values in proptest::collection::vec(proptest::option::of("[a-z0-9 ]{0,12}"), 0..8)) {
            let refs: Vec<Option<&str>> = values.iter().map(|v| v.as_deref()).collect();
            let mut bytes = vec![b'I'];
            bytes.extend(1u32.to_be_bytes());
            bytes.push(b'N');
            bytes.extend(tuple_bytes(&refs));
            let expected: Vec<Datum> = values
                .iter()
                .map(|v| v.clone().map_or(Datum::Null, Datum::Text))
                .collect();
            prop_assert_eq!(decode(&bytes).unwrap(), Message::Insert { relation: 1, new: expected });
        }
    }
}
