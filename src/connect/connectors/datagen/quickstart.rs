//! The quickstart data sets: each record is a pure function of the seed and its record number,
//! so record `n` is the same record however often and wherever it is generated (the basis of
//! exactly-once across restarts), and the sets refer to each other:
//!
//! ```text
//!  users      User_1 … User_N (record n is User_{n mod N + 1}: a stream of profile updates)
//!    ▲ userid
//!  orders     orderid n, a user, an item (with its stable price), units, the user's address
//!    ▲ orderid                    (every user has one stable shipping address)
//!  payments   payment n pays order n (same orderid, same amount)
//!  pageviews  a user views a page
//! ```
//!
//! Event times are a fixed start plus `n × step`, never the wall clock.

use serde_json::{Value, json};

/// 2024-01-01T00:00:00Z in ms: the event time of record 0.
pub(super) const START_MS: i64 = 1_704_067_200_000;

/// How many items orders choose from (`Item_1` … `Item_100`).
const ITEMS: u32 = 100;

/// How many pages page views choose from (`Page_1` … `Page_100`).
const PAGES: u32 = 100;

/// Cities with their state and the first three digits of their zip codes.
const CITIES: &[(&str, &str, u32)] = &[
    ("Austin", "TX", 787),
    ("Seattle", "WA", 981),
    ("Chicago", "IL", 606),
    ("Denver", "CO", 802),
    ("Portland", "OR", 972),
    ("Atlanta", "GA", 303),
    ("Phoenix", "AZ", 850),
    ("Miami", "FL", 331),
    ("Columbus", "OH", 432),
    ("Nashville", "TN", 372),
    ("San Diego", "CA", 921),
    ("Philadelphia", "PA", 191),
];

/// What an order's status can be; `cancelled` is rarer than the others.
const STATUSES: &[&str] = &["created", "paid", "shipped", "delivered"];

/// Genders as Confluent's users quickstart names them.
const GENDERS: &[&str] = &["MALE", "FEMALE", "OTHER"];

/// A quickstart data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Quickstart {
    /// Orders keyed by `orderid`.
    Orders,
    /// User profiles keyed by `userid`.
    Users,
    /// Page views keyed by `userid`.
    Pageviews,
    /// Payments of orders keyed by `orderid`.
    Payments,
}

impl Quickstart {
    /// Every quickstart's name, as the `quickstart` key takes them.
    pub(super) const NAMES: &'static [&'static str] = &["orders", "users", "pageviews", "payments"];

    /// The quickstart called `name` (case-insensitive).
    pub(super) fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "orders" => Some(Self::Orders),
            "users" => Some(Self::Users),
            "pageviews" => Some(Self::Pageviews),
            "payments" => Some(Self::Payments),
            _ => None,
        }
    }

    /// Its name.
    pub(super) const fn name(self) -> &'static str {
        match self {
            Self::Orders => "orders",
            Self::Users => "users",
            Self::Pageviews => "pageviews",
            Self::Payments => "payments",
        }
    }
}

/// Separates the random streams of different uses of the same number.
#[derive(Clone, Copy)]
enum Stream {
    Order = 1,
    User = 2,
    Profile = 3,
    Item = 4,
    Pageview = 5,
    Payment = 6,
    Address = 7,
}

/// Generates the records of one quickstart.
#[derive(Debug, Clone)]
pub(super) struct Generator {
    quickstart: Quickstart,
    seed: u64,
    step_ms: i64,
    users: u64,
}

impl Generator {
    /// A generator; `step_ms` is the event time between two records, `users` how many users
    /// there are.
    pub(super) fn new(quickstart: Quickstart, seed: u64, step_ms: i64, users: u64) -> Self {
        Self {
            quickstart,
            seed,
            step_ms: step_ms.max(1),
            users: users.max(1),
        }
    }

    /// Record `n`: its key and value.
    pub(super) fn record(&self, n: u64) -> (Value, Value) {
        match self.quickstart {
            Quickstart::Orders => {
                let o = self.order(n);
                (Value::String(n.to_string()), o)
            }
            Quickstart::Users => {
                let u = self.user(n);
                (u["userid"].clone(), u)
            }
            Quickstart::Pageviews => {
                let v = self.pageview(n);
                (v["userid"].clone(), v)
            }
            Quickstart::Payments => {
                let p = self.payment(n);
                (Value::String(n.to_string()), p)
            }
        }
    }

    /// A random source for one use of one number: the same every time.
    fn rng(&self, stream: Stream, n: u64) -> fastrand::Rng {
        let mixed = splitmix64(self.seed ^ splitmix64(n ^ ((stream as u64) << 56)));
        fastrand::Rng::with_seed(mixed)
    }

    fn event_time(&self, n: u64) -> i64 {
        START_MS.saturating_add((n as i64).saturating_mul(self.step_ms))
    }

    fn order(&self, n: u64) -> Value {
        let mut rng = self.rng(Stream::Order, n);
        let user = rng.u64(1..=self.users);
        let item = rng.u32(1..=ITEMS);
        let units = rng.u32(1..=5);
        let cents = u64::from(units) * self.item_price_cents(item);
        let status = if rng.u8(0..20) == 0 {
            "cancelled"
        } else {
            STATUSES[rng.usize(..STATUSES.len())]
        };
        json!({
            "orderid": n,
            "ordertime": self.event_time(n),
            "itemid": format!("Item_{item}"),
            "orderunits": units,
            "userid": format!("User_{user}"),
            "address": self.address(user),
            "amount": cents as f64 / 100.0,
            "status": status,
        })
    }

    /// An item's price in cents: the same in every order.
    fn item_price_cents(&self, item: u32) -> u64 {
        self.rng(Stream::Item, u64::from(item)).u64(199..=19_999)
    }

    /// A user's shipping address: the same in every order of theirs.
    fn address(&self, user: u64) -> Value {
        let mut rng = self.rng(Stream::Address, user);
        let (city, state, zip) = CITIES[rng.usize(..CITIES.len())];
        json!({"city": city, "state": state, "zipcode": zip * 100 + rng.u32(0..100)})
    }

    fn user(&self, n: u64) -> Value {
        let user = n % self.users + 1;
        let mut profile = self.rng(Stream::Profile, user);
        let gender = GENDERS[profile.usize(..GENDERS.len())];
        let two_years_ms = 2 * 365 * 24 * 3600 * 1000;
        let registertime = START_MS - profile.i64(0..two_years_ms);
        let mut rng = self.rng(Stream::User, n);
        json!({
            "registertime": registertime,
            "userid": format!("User_{user}"),
            "regionid": format!("Region_{}", rng.u32(1..=9)),
            "gender": gender,
        })
    }

    fn pageview(&self, n: u64) -> Value {
        let mut rng = self.rng(Stream::Pageview, n);
        json!({
            "viewtime": self.event_time(n),
            "userid": format!("User_{}", rng.u64(1..=self.users)),
            "pageid": format!("Page_{}", rng.u32(1..=PAGES)),
        })
    }

    fn payment(&self, n: u64) -> Value {
        let order = self.order(n);
        let delay_ms = self.rng(Stream::Payment, n).i64(1_000..=600_000);
        json!({
            "paymentid": n,
            "orderid": n,
            "amount": order["amount"],
            "ts": self.event_time(n) + delay_ms,
        })
    }
}

/// Scrambles a number (SplitMix64's finaliser): nearby inputs give unrelated outputs.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn generator(q: Quickstart, seed: u64) -> Generator {
        Generator::new(q, seed, 500, 50)
    }

    #[test]
    fn the_same_seed_gives_the_same_records() {
        for q in Quickstart::NAMES.iter().map(|n| Quickstart::parse(n).unwrap()) {
            let a: Vec<_> = (0..200).map(|n| generator(q, 7).record(n)).collect();
            let b: Vec<_> = (0..200).rev().map(|n| generator(q, 7).record(n)).rev().collect();
            assert_eq!(a, b, "{q:?}: record n does not depend on what was generated before");
            let c: Vec<_> = (0..200).map(|n| generator(q, 8).record(n)).collect();
            assert_ne!(a, c, "{q:?}: another seed gives other data");
        }
    }

    #[test]
    fn orders_refer_to_users_and_payments_to_orders() {
        let users = generator(Quickstart::Users, 3);
        let orders = generator(Quickstart::Orders, 3);
        let payments = generator(Quickstart::Payments, 3);
        let user_ids: BTreeSet<String> = (0..50)
            .map(|n| users.record(n).0.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(user_ids.len(), 50, "the first N user records are the N users");
        assert_eq!(users.record(0).1["userid"], "User_1");
        assert_eq!(users.record(50).1["userid"], "User_1", "then they repeat as updates");
        assert_eq!(users.record(0).1["gender"], users.record(50).1["gender"]);
        let mut times = Vec::new();
        for n in 0..1000 {
            let (key, o) = orders.record(n);
            assert_eq!(key, Value::String(n.to_string()));
            assert_eq!(o["orderid"], n);
            assert!(user_ids.contains(o["userid"].as_str().unwrap()), "{o}");
            let cents = (o["amount"].as_f64().unwrap() * 100.0).round();
            assert!((o["amount"].as_f64().unwrap() * 100.0 - cents).abs() < 1e-6, "{o}");
            assert!(o["address"]["zipcode"].as_u64().unwrap() >= 10_000, "{o}");
            times.push(o["ordertime"].as_i64().unwrap());
            let (pkey, p) = payments.record(n);
            assert_eq!((pkey, &p["orderid"], &p["amount"]), (key, &o["orderid"], &o["amount"]));
            assert!(p["ts"].as_i64().unwrap() > o["ordertime"].as_i64().unwrap());
        }
        assert_eq!(times[0], START_MS);
        assert!(times.windows(2).all(|w| w[1] - w[0] == 500));
        // Orders of the same user ship to the same address; the same item has the same price.
        let all: Vec<Value> = (0..1000).map(|n| orders.record(n).1).collect();
        for a in &all {
            for b in all.iter().filter(|b| b["userid"] == a["userid"]) {
                assert_eq!(a["address"], b["address"]);
            }
            for b in all.iter().filter(|b| b["itemid"] == a["itemid"]) {
                let unit = |o: &Value| o["amount"].as_f64().unwrap() / o["orderunits"].as_f64().unwrap();
                assert!((unit(a) - unit(b)).abs() < 1e-6, "{a} {b}");
            }
        }
        let statuses: BTreeSet<&str> = all.iter().map(|o| o["status"].as_str().unwrap()).collect();
        assert!(statuses.len() >= 4, "{statuses:?}");
    }

    #[test]
    fn pageviews_are_keyed_by_an_existing_user() {
        let views = generator(Quickstart::Pageviews, 1);
        for n in 0..300 {
            let (key, v) = views.record(n);
            assert_eq!(key, v["userid"]);
            let k: u64 = key.as_str().unwrap().trim_start_matches("User_").parse().unwrap();
            assert!((1..=50).contains(&k));
            assert!(v["pageid"].as_str().unwrap().starts_with("Page_"));
        }
    }
}
