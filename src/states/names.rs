//! State names as numbers: `S<n>` and `Stop` are kept as a 4-byte [`StateName`] inside the
//! model and spelled out only where they are printed or serialized (100k-activity classes
//! have ~100k states, each naming several others: strings per name were most of the compile's
//! memory).

use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;

/// `S<n>` (n ≥ 1) or `Stop`. Compares with strings by its spelling (`name == "S4"`);
/// `Display`, `Debug` and serde use the spelling (`Debug` quotes it like a `String`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StateName(NonZeroU32);

/// Marks unused inline slots of [`StateNames`]; never a real name.
const UNUSED: StateName = StateName(NonZeroU32::MAX);

impl StateName {
    /// `Stop`: sorts after every `S<n>`.
    pub const STOP: StateName = StateName(match NonZeroU32::new(u32::MAX - 1) {
        Some(n) => n,
        None => unreachable!(),
    });

    /// `S<n>`; `n` is 1-based (state numbers start at 1).
    ///
    /// # Panics
    /// When `n` is 0 or too large to be a state number.
    pub fn s(n: u32) -> StateName {
        assert!(n < u32::MAX - 1, "state number {n} out of range");
        StateName(NonZeroU32::new(n).expect("state numbers start at 1"))
    }

    /// `n` of `S<n>`; `None` for `Stop`.
    pub fn number(self) -> Option<u32> {
        (self != StateName::STOP).then_some(self.0.get())
    }

    pub fn is_stop(self) -> bool {
        self == StateName::STOP
    }

    /// The name spelled exactly as [`Display`](std::fmt::Display) does (`S12`, `Stop`); any
    /// other spelling (`S0`, `S012`, `s1`) is not a state name.
    pub fn parse(s: &str) -> Option<StateName> {
        if s == "Stop" {
            return Some(StateName::STOP);
        }
        let digits = s.strip_prefix('S')?;
        if digits.is_empty()
            || digits.starts_with('0')
            || digits.len() > 10
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let n: u64 = digits.parse().ok()?;
        (n < u64::from(u32::MAX - 1)).then(|| StateName::s(n as u32))
    }
}

impl std::fmt::Display for StateName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.number() {
            Some(n) => write!(f, "S{n}"),
            None => f.write_str("Stop"),
        }
    }
}

impl std::fmt::Debug for StateName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl std::str::FromStr for StateName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StateName::parse(s).ok_or_else(|| format!("{s:?} is not a state name (S<n> or Stop)"))
    }
}

impl From<StateName> for String {
    fn from(n: StateName) -> String {
        n.to_string()
    }
}

impl PartialEq<str> for StateName {
    fn eq(&self, other: &str) -> bool {
        StateName::parse(other) == Some(*self)
    }
}

impl PartialEq<&str> for StateName {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl PartialEq<String> for StateName {
    fn eq(&self, other: &String) -> bool {
        *self == **other
    }
}

impl PartialEq<StateName> for str {
    fn eq(&self, other: &StateName) -> bool {
        other == self
    }
}

impl PartialEq<StateName> for &str {
    fn eq(&self, other: &StateName) -> bool {
        other == *self
    }
}

impl PartialEq<StateName> for String {
    fn eq(&self, other: &StateName) -> bool {
        other == self.as_str()
    }
}

impl Serialize for StateName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StateName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Something that names a state: a [`StateName`] or its spelling (`str`, `String`).
pub trait AsStateName {
    fn state_name(&self) -> Option<StateName>;
}

impl AsStateName for StateName {
    fn state_name(&self) -> Option<StateName> {
        Some(*self)
    }
}

impl AsStateName for str {
    fn state_name(&self) -> Option<StateName> {
        StateName::parse(self)
    }
}

impl<T: AsStateName + ?Sized> AsStateName for &T {
    fn state_name(&self) -> Option<StateName> {
        (**self).state_name()
    }
}

impl AsStateName for String {
    fn state_name(&self) -> Option<StateName> {
        StateName::parse(self)
    }
}

/// `names` spelled out and joined with `sep` (`S2,S3`).
pub fn join_names(names: &[StateName], sep: &str) -> String {
    let mut out = String::new();
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        use std::fmt::Write;
        let _ = write!(out, "{n}");
    }
    out
}

/// The spelling of `name`, or `none` when there is none (`-` in tables).
pub fn name_or(name: Option<StateName>, none: &str) -> String {
    name.map_or_else(|| none.to_string(), |n| n.to_string())
}

/// A short list of state names (successors, stacks): up to two are held inline (most states
/// have one or two successors), longer lists in one exact-size allocation. Reads as a
/// `[StateName]`; compares with lists of strings; serialized as a list of strings.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StateNames(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    /// Unused slots hold [`UNUSED`], always after the used ones.
    Inline([StateName; 2]),
    Heap(Box<[StateName]>),
}

impl StateNames {
    /// The empty list (no allocation).
    pub const EMPTY: StateNames = StateNames(Repr::Inline([UNUSED, UNUSED]));

    pub fn new() -> StateNames {
        StateNames::EMPTY
    }

    /// No names (inherent, so serde's `skip_serializing_if` can name it).
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    pub fn as_slice(&self) -> &[StateName] {
        match &self.0 {
            Repr::Inline(a) if a[0] == UNUSED => &[],
            Repr::Inline(a) if a[1] == UNUSED => &a[..1],
            Repr::Inline(a) => &a[..],
            Repr::Heap(b) => b,
        }
    }

    /// Whether `name` is in the list (`name` may be a `StateName`, `str` or `String`).
    pub fn contains<T: ?Sized>(&self, name: &T) -> bool
    where
        StateName: PartialEq<T>,
    {
        self.iter().any(|s| s == name)
    }

    /// The names spelled out and joined with `sep` (`S2,S3`).
    pub fn join(&self, sep: &str) -> String {
        join_names(self, sep)
    }

    /// The names spelled out.
    pub fn to_strings(&self) -> Vec<String> {
        self.iter().map(|n| n.to_string()).collect()
    }
}

impl Default for StateNames {
    fn default() -> StateNames {
        StateNames::EMPTY
    }
}

impl From<&[StateName]> for StateNames {
    fn from(v: &[StateName]) -> StateNames {
        match *v {
            [] => StateNames::EMPTY,
            [a] => StateNames(Repr::Inline([a, UNUSED])),
            [a, b] => StateNames(Repr::Inline([a, b])),
            _ => StateNames(Repr::Heap(v.into())),
        }
    }
}

impl From<Vec<StateName>> for StateNames {
    fn from(v: Vec<StateName>) -> StateNames {
        if v.len() <= 2 {
            StateNames::from(&v[..])
        } else {
            StateNames(Repr::Heap(v.into_boxed_slice()))
        }
    }
}

impl FromIterator<StateName> for StateNames {
    fn from_iter<I: IntoIterator<Item = StateName>>(iter: I) -> StateNames {
        let mut it = iter.into_iter();
        let Some(a) = it.next() else {
            return StateNames::EMPTY;
        };
        let Some(b) = it.next() else {
            return StateNames(Repr::Inline([a, UNUSED]));
        };
        let Some(c) = it.next() else {
            return StateNames(Repr::Inline([a, b]));
        };
        let mut v = vec![a, b, c];
        v.extend(it);
        StateNames::from(v)
    }
}

impl std::ops::Deref for StateNames {
    type Target = [StateName];
    fn deref(&self) -> &[StateName] {
        self.as_slice()
    }
}

impl<'a> IntoIterator for &'a StateNames {
    type Item = &'a StateName;
    type IntoIter = std::slice::Iter<'a, StateName>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl std::fmt::Debug for StateNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T, const N: usize> PartialEq<[T; N]> for StateNames
where
    StateName: PartialEq<T>,
{
    fn eq(&self, other: &[T; N]) -> bool {
        self.len() == N && self.iter().zip(other).all(|(a, b)| a == b)
    }
}

impl<T> PartialEq<Vec<T>> for StateNames
where
    StateName: PartialEq<T>,
{
    fn eq(&self, other: &Vec<T>) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a == b)
    }
}

impl<T> PartialEq<[T]> for StateNames
where
    StateName: PartialEq<T>,
{
    fn eq(&self, other: &[T]) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a == b)
    }
}

impl<T, const N: usize> PartialEq<[T; N]> for &StateNames
where
    StateName: PartialEq<T>,
{
    fn eq(&self, other: &[T; N]) -> bool {
        **self == *other
    }
}

impl<T> PartialEq<Vec<T>> for &StateNames
where
    StateName: PartialEq<T>,
{
    fn eq(&self, other: &Vec<T>) -> bool {
        **self == *other
    }
}

impl Serialize for StateNames {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for StateNames {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<StateName>::deserialize(d).map(StateNames::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_spelled_and_parsed_alike() {
        for s in ["S1", "S42", "Stop", "S4294967292"] {
            assert_eq!(StateName::parse(s).unwrap().to_string(), s);
        }
        for s in [
            "S0",
            "S01",
            "s1",
            "S",
            "",
            "stop",
            "S-1",
            "S4294967294",
            "S99999999999",
        ] {
            assert_eq!(StateName::parse(s), None, "{s}");
        }
        assert!(StateName::s(7) < StateName::STOP);
        assert_eq!(StateName::s(3), "S3");
        assert_ne!(StateName::s(3), "S03");
    }

    #[test]
    fn lists_of_any_length_read_back() {
        for n in 0..6 {
            let v: Vec<StateName> = (1..=n).map(StateName::s).collect();
            let l: StateNames = v.iter().copied().collect();
            assert_eq!(l.as_slice(), &v[..]);
            assert_eq!(StateNames::from(v.clone()).as_slice(), &v[..]);
            let json = serde_json::to_string(&l).unwrap();
            let back: StateNames = serde_json::from_str(&json).unwrap();
            assert_eq!(back, l);
        }
        let l: StateNames = [StateName::s(2), StateName::STOP].into_iter().collect();
        assert_eq!(l, ["S2", "Stop"]);
        assert_eq!(l.join(","), "S2,Stop");
        assert!(l.contains("Stop") && l.contains(&"S2".to_string()) && !l.contains("S3"));
        assert_eq!(std::mem::size_of::<StateNames>(), 16);
    }

    #[test]
    fn a_state_stays_small() {
        // ~100k of them per 100k-activity class (issue 12): name, flags, role, owner,
        // successors inline and one pointer to the rarer facts.
        assert!(std::mem::size_of::<crate::states::State>() <= 112);
    }

    #[test]
    fn plan_and_diff_state_entries_stay_small() {
        // One of each per state of a plan (issue 12): names as numbers, stacks inline.
        assert!(std::mem::size_of::<crate::plan::StateMapping>() <= 240);
        assert!(std::mem::size_of::<crate::diff::StateDelta>() <= 160);
    }
}
