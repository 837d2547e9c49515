//! Kubernetes resource quantities ("100m", "1.5Gi", "2e3") for the admission plugins: parsing,
//! arithmetic and canonical formatting as upstream's `resource.Quantity` does. Values are held
//! exactly at nano precision (upstream rounds anything finer up to 1n, away from zero) together
//! with the format the value was written in, which decides how `to_string()` renders it.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// Why a string is not a Kubernetes quantity (upstream's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    Format,
    #[error("unable to parse quantity's suffix")]
    Suffix,
}

/// How a quantity is rendered (upstream resource.Format).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// "1e3", "2e-3".
    DecimalExponent,
    /// "1Ki", "5Gi".
    BinarySI,
    /// "100m", "1k", "5G".
    #[default]
    DecimalSI,
}

/// A resource quantity. Equality, ordering and hashing look at the value only, as upstream's
/// `Cmp`/`Equal` do; the format only matters for `Display`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

const NANOS_PER_UNIT: i128 = 1_000_000_000;
const NANOS_PER_MILLI: i128 = 1_000_000;
/// Upstream's resource.MaxMilliValue: the largest value whose milli value fits an int64.
pub const MAX_MILLI_VALUE: i64 = i64::MAX / 1000;

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl Hash for Quantity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.nanos.hash(state);
    }
}

impl Quantity {
    /// Parses a quantity exactly as upstream's ParseQuantity (no surrounding spaces allowed).
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        if s.is_empty() {
            return Err(QuantityError::Format);
        }
        if s == "0" {
            return Ok(Quantity::zero());
        }
        let b = s.as_bytes();
        let mut pos = 0;
        let mut negative = false;
        if b[0] == b'+' || b[0] == b'-' {
            negative = b[0] == b'-';
            pos = 1;
        }
        let int_start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        let int_digits = &s[int_start..pos];
        let mut frac_digits = "";
        if pos < b.len() && b[pos] == b'.' {
            pos += 1;
            let frac_start = pos;
            while pos < b.len() && b[pos].is_ascii_digit() {
                pos += 1;
            }
            frac_digits = &s[frac_start..pos];
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(QuantityError::Format);
        }
        let suffix_start = pos;
        while pos < b.len() && b"eEinumkKMGTP".contains(&b[pos]) {
            pos += 1;
        }
        if pos < b.len() && (b[pos] == b'-' || b[pos] == b'+') {
            pos += 1;
        }
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos != b.len() {
            return Err(QuantityError::Format);
        }
        let (exp10, exp2, mut format) = interpret_suffix(&s[suffix_start..])?;

        let frac_len = i64::try_from(frac_digits.len()).unwrap_or(i64::MAX);
        let magnitude = digits_to_nanos(
            int_digits,
            frac_digits,
            i64::from(exp10).saturating_sub(frac_len),
            exp2,
        );
        if format == Format::BinarySI && magnitude > 0 && magnitude < NANOS_PER_UNIT {
            format = Format::DecimalSI;
        }
        Ok(Quantity {
            nanos: if negative { -magnitude } else { magnitude },
            format,
        })
    }

    /// Zero in DecimalSI ("0").
    pub fn zero() -> Quantity {
        Quantity::default()
    }

    /// `value` whole units (upstream NewQuantity).
    pub fn new(value: i64, format: Format) -> Quantity {
        Quantity {
            nanos: i128::from(value) * NANOS_PER_UNIT,
            format,
        }
    }

    /// `millis` thousandths (upstream NewMilliQuantity).
    pub fn new_milli(millis: i64, format: Format) -> Quantity {
        Quantity {
            nanos: i128::from(millis) * NANOS_PER_MILLI,
            format,
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// -1, 0 or 1.
    pub fn sign(&self) -> i32 {
        match self.nanos.cmp(&0) {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        }
    }

    /// The value in nano-units.
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// The value in whole units, rounded away from zero (upstream Value()).
    pub fn value(&self) -> i64 {
        scaled_round_up(self.nanos, NANOS_PER_UNIT)
    }

    /// The value in thousandths, rounded away from zero (upstream MilliValue()).
    pub fn milli_value(&self) -> i64 {
        scaled_round_up(self.nanos, NANOS_PER_MILLI)
    }

    /// self + other; a zero left side takes the right side's format (upstream Add).
    pub fn add(&self, other: &Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
            format: if self.nanos == 0 {
                other.format
            } else {
                self.format
            },
        }
    }

    /// self - other; a zero left side takes the right side's format (upstream Sub).
    pub fn sub(&self, other: &Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_sub(other.nanos),
            format: if self.nanos == 0 {
                other.format
            } else {
                self.format
            },
        }
    }

    /// Rounds up to whole units (upstream RoundUp(0)); returns whether it was already exact.
    pub fn round_up_to_units(&mut self) -> bool {
        let rem = self.nanos % NANOS_PER_UNIT;
        if rem == 0 {
            return true;
        }
        let away = if self.nanos > 0 {
            NANOS_PER_UNIT - rem
        } else {
            -NANOS_PER_UNIT - rem
        };
        self.nanos = self.nanos.saturating_add(away);
        false
    }

    /// Canonical string as upstream's Quantity.String().
    fn canonical(&self) -> String {
        if self.nanos == 0 {
            return "0".to_string();
        }
        let mut format = self.format;
        if format == Format::BinarySI {
            let abs = self.nanos.unsigned_abs();
            if abs < 1024 * NANOS_PER_UNIT.unsigned_abs() || self.nanos % NANOS_PER_UNIT != 0 {
                format = Format::DecimalSI;
            }
        }
        if format == Format::BinarySI {
            let mut amount = self.nanos / NANOS_PER_UNIT;
            let mut times = 0;
            while times < 6 && amount.unsigned_abs() >= 1024 && amount % 1024 == 0 {
                amount /= 1024;
                times += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][times];
            return format!("{amount}{suffix}");
        }
        // decimal: strip factors of ten, then lower the exponent to a multiple of three
        let mut amount = self.nanos;
        let mut times: i32 = 0;
        while amount.unsigned_abs() >= 10 && amount % 10 == 0 {
            amount /= 10;
            times += 1;
        }
        let rem = times % 3;
        for _ in 0..rem {
            amount = amount.saturating_mul(10);
        }
        let mut exponent = times - rem - 9;
        if format == Format::DecimalExponent {
            return if exponent == 0 {
                amount.to_string()
            } else {
                format!("{amount}e{exponent}")
            };
        }
        while exponent > 18 {
            amount = amount.saturating_mul(1000);
            exponent -= 3;
        }
        let suffix = match exponent {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            18 => "E",
            _ => "",
        };
        format!("{amount}{suffix}")
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl serde::Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.canonical())
    }
}

impl<'de> serde::Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(deserializer)?;
        from_json(&v).ok_or_else(|| serde::de::Error::custom(QuantityError::Format))
    }
}

/// A quantity from a JSON value: a string (trimmed, as upstream's UnmarshalJSON) or a number.
pub fn from_json(v: &serde_json::Value) -> Option<Quantity> {
    match v {
        serde_json::Value::String(s) => Quantity::parse(s.trim()).ok(),
        serde_json::Value::Number(n) => Quantity::parse(&n.to_string()).ok(),
        _ => None,
    }
}

/// A named set of quantities (upstream corev1.ResourceList), sorted by name.
pub type ResourceList = BTreeMap<String, Quantity>;

/// The quantities of a JSON resource map such as `resources.requests`; entries that are not
/// quantities are skipped (validation rejects them before admission runs).
pub fn resource_list(v: Option<&serde_json::Value>) -> ResourceList {
    v.and_then(serde_json::Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| from_json(v).map(|q| (k.clone(), q)))
                .collect()
        })
        .unwrap_or_default()
}

/// A resource list as a JSON map of canonical strings.
pub fn resource_list_to_json(list: &ResourceList) -> serde_json::Value {
    serde_json::Value::Object(
        list.iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.to_string())))
            .collect(),
    )
}

/// a + b for every name in either list (upstream quota.Add).
pub fn add_lists(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut out = a.clone();
    add_into(&mut out, b);
    out
}

/// Adds every quantity of `other` into `list` (upstream addResourceList).
pub fn add_into(list: &mut ResourceList, other: &ResourceList) {
    for (k, v) in other {
        let sum = match list.get(k) {
            Some(cur) => cur.add(v),
            None => *v,
        };
        list.insert(k.clone(), sum);
    }
}

/// Raises every quantity of `list` to at least the one in `other` (upstream maxResourceList).
pub fn max_into(list: &mut ResourceList, other: &ResourceList) {
    for (k, v) in other {
        if list.get(k).is_none_or(|cur| v > cur) {
            list.insert(k.clone(), *v);
        }
    }
}

/// Only the entries whose names are in `names` (upstream quota.Mask).
pub fn mask<'a>(list: &ResourceList, names: impl IntoIterator<Item = &'a String>) -> ResourceList {
    names
        .into_iter()
        .filter_map(|n| list.get(n).map(|q| (n.clone(), *q)))
        .collect()
}

/// Decimal exponent, binary exponent and format of a suffix (upstream suffixHandler.interpret).
fn interpret_suffix(suffix: &str) -> Result<(i32, u32, Format), QuantityError> {
    let dec = |e: i32| Ok((e, 0, Format::DecimalSI));
    let bin = |e: u32| Ok((0, e, Format::BinarySI));
    match suffix {
        "" => dec(0),
        "n" => dec(-9),
        "u" => dec(-6),
        "m" => dec(-3),
        "k" => dec(3),
        "M" => dec(6),
        "G" => dec(9),
        "T" => dec(12),
        "P" => dec(15),
        "E" => dec(18),
        "Ki" => bin(10),
        "Mi" => bin(20),
        "Gi" => bin(30),
        "Ti" => bin(40),
        "Pi" => bin(50),
        "Ei" => bin(60),
        _ => {
            let rest = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))
                .filter(|r| !r.is_empty())
                .ok_or(QuantityError::Suffix)?;
            let e = rest.parse::<i64>().map_err(|_| QuantityError::Suffix)?;
            let e = i32::try_from(e).map_err(|_| QuantityError::Suffix)?;
            Ok((e, 0, Format::DecimalExponent))
        }
    }
}

/// |digits| * 10^exp10 * 2^exp2 in nanos, rounded up, saturating at i128::MAX.
fn digits_to_nanos(int_digits: &str, frac_digits: &str, exp10: i64, exp2: u32) -> i128 {
    let all: String = int_digits
        .chars()
        .chain(frac_digits.chars())
        .collect::<String>();
    let trimmed = all.trim_start_matches('0');
    if trimmed.is_empty() {
        return 0;
    }
    // move trailing zeros into the exponent
    let significant = trimmed.trim_end_matches('0');
    let mut e = exp10
        .saturating_add(i64::try_from(trimmed.len() - significant.len()).unwrap_or(i64::MAX))
        .saturating_add(9);
    // keep at most 30 significant digits; anything dropped only makes the value round up
    let mut sticky = false;
    let mut digits = significant;
    if digits.len() > 30 {
        sticky = digits[30..].bytes().any(|d| d != b'0');
        e = e.saturating_add(i64::try_from(digits.len() - 30).unwrap_or(i64::MAX));
        digits = &digits[..30];
    }
    let mut m: i128 = 0;
    for d in digits.bytes() {
        m = m * 10 + i128::from(d - b'0');
    }
    let Some(m) = m.checked_mul(1i128 << exp2) else {
        return i128::MAX;
    };
    if e >= 0 {
        let Ok(e) = u32::try_from(e) else {
            return i128::MAX;
        };
        return 10i128
            .checked_pow(e)
            .and_then(|p| m.checked_mul(p))
            .unwrap_or(i128::MAX);
    }
    let Some(d) = u32::try_from(-e).ok().and_then(|e| 10i128.checked_pow(e)) else {
        return 1; // smaller than a nano: rounds up to 1n
    };
    let q = m / d;
    if m % d != 0 || sticky {
        q + 1
    } else {
        q
    }
}

/// nanos / unit, rounded away from zero, saturated to i64.
fn scaled_round_up(nanos: i128, unit: i128) -> i64 {
    let q = nanos.unsigned_abs().div_ceil(unit.unsigned_abs());
    let q = i64::try_from(q).unwrap_or(i64::MAX);
    if nanos < 0 {
        -q
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).expect("valid quantity")
    }

    fn canon(s: &str) -> String {
        q(s).to_string()
    }

    #[test]
    fn canonical_decimal_forms() {
        assert_eq!(canon("0.5"), "500m");
        assert_eq!(canon("100m"), "100m");
        assert_eq!(canon("1"), "1");
        assert_eq!(canon("1500m"), "1500m");
        assert_eq!(canon("1.5"), "1500m");
        assert_eq!(canon("1000"), "1k");
        assert_eq!(canon("100M"), "100M");
        assert_eq!(canon("12345"), "12345");
        assert_eq!(canon("0.000000001"), "1n");
        assert_eq!(canon("1E"), "1E");
        assert_eq!(canon("0"), "0");
        assert_eq!(canon("0m"), "0");
        assert_eq!(canon("-100m"), "-100m");
        assert_eq!(canon("+2"), "2");
        assert_eq!(canon(".5"), "500m");
        assert_eq!(canon("250u"), "250u");
    }

    #[test]
    fn canonical_binary_forms() {
        assert_eq!(canon("1Gi"), "1Gi");
        assert_eq!(canon("1024Mi"), "1Gi");
        assert_eq!(canon("1536Mi"), "1536Mi");
        assert_eq!(canon("1.5Gi"), "1536Mi");
        assert_eq!(canon("0.5Ki"), "512");
        assert_eq!(canon("1Ki"), "1Ki");
        assert_eq!(canon("2048Ki"), "2Mi");
        assert_eq!(canon("0.1Gi"), "107374182400m");
        // a value below one in a binary suffix becomes decimal
        assert_eq!(q("0.0001Ki").format(), Format::DecimalSI);
    }

    #[test]
    fn canonical_exponent_forms() {
        assert_eq!(canon("1e3"), "1e3");
        assert_eq!(canon("1E3"), "1e3");
        assert_eq!(canon("1e4"), "10e3");
        assert_eq!(canon("1.5e3"), "1500");
        assert_eq!(canon("15e-1"), "1500e-3");
        assert_eq!(q("1e3"), q("1k"));
    }

    #[test]
    fn values_round_away_from_zero() {
        assert_eq!(q("100m").milli_value(), 100);
        assert_eq!(q("100m").value(), 1);
        assert_eq!(q("1Gi").value(), 1 << 30);
        assert_eq!(q("-1500m").value(), -2);
        assert_eq!(q("0.0000000001").nanos(), 1);
        assert_eq!(q("1.0000000001").nanos(), 1_000_000_001);
    }

    #[test]
    fn rejects_malformed_input() {
        assert_eq!(Quantity::parse(""), Err(QuantityError::Format));
        assert_eq!(Quantity::parse("abc"), Err(QuantityError::Format));
        assert_eq!(Quantity::parse("1 Gi"), Err(QuantityError::Format));
        assert_eq!(Quantity::parse("1Gb"), Err(QuantityError::Format));
        assert_eq!(Quantity::parse("."), Err(QuantityError::Format));
        assert_eq!(Quantity::parse("1Mm"), Err(QuantityError::Suffix));
        assert_eq!(Quantity::parse("1e"), Err(QuantityError::Suffix));
    }

    #[test]
    fn arithmetic_keeps_left_format_unless_zero() {
        let sum = q("100m").add(&q("200m"));
        assert_eq!(sum.to_string(), "300m");
        let mem = Quantity::zero().add(&q("1Gi"));
        assert_eq!(mem.format(), Format::BinarySI);
        assert_eq!(mem.add(&q("1Gi")).to_string(), "2Gi");
        assert_eq!(q("1Gi").add(&q("1G")).to_string(), "2073741824");
        assert_eq!(q("1").add(&q("500m")).to_string(), "1500m");
        assert_eq!(q("1").sub(&q("1500m")).to_string(), "-500m");
        assert!(q("1").sub(&q("1")).is_zero());
    }

    #[test]
    fn round_up_to_units_reports_exactness() {
        let mut a = q("1500m");
        assert!(!a.round_up_to_units());
        assert_eq!(a.to_string(), "2");
        let mut b = q("2Gi");
        assert!(b.round_up_to_units());
        assert_eq!(b.to_string(), "2Gi");
    }

    #[test]
    fn serde_round_trip() {
        let v: Quantity = serde_json::from_value(serde_json::json!("0.5")).expect("string");
        assert_eq!(
            serde_json::to_value(v).expect("ser"),
            serde_json::json!("500m")
        );
        let n: Quantity = serde_json::from_value(serde_json::json!(2)).expect("number");
        assert_eq!(n.to_string(), "2");
        assert_eq!(from_json(&serde_json::json!(" 1Gi ")), Some(q("1Gi")));
    }
}
