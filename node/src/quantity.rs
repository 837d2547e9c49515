//! Kubernetes resource quantities ("100m", "1.5Gi", "2e3"), held exactly at nano precision
//! as upstream's resource.Quantity does: the one parser every node module uses.

/// Why a quantity string is not a Kubernetes quantity (upstream's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    Format,
    #[error("unable to parse quantity's suffix")]
    Suffix,
}

/// A Kubernetes resource quantity, held exactly at nano precision (upstream rounds anything
/// finer up to 1n, away from zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Quantity {
    nanos: i128,
}

const NANOS_PER_UNIT: i128 = 1_000_000_000;
const NANOS_PER_MILLI: i128 = 1_000_000;

impl Quantity {
    /// Parses "100m", "1.5Gi", "2e3", "+.5k", ... as upstream's ParseQuantity does.
    pub fn parse(input: &str) -> Result<Quantity, QuantityError> {
        let s = input.trim();
        let b = s.as_bytes();
        if b.is_empty() {
            return Err(QuantityError::Format);
        }
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
        let (exp10, exp2) = parse_suffix(&s[suffix_start..])?;

        // mantissa = all digits, decimal exponent lowered by the fraction length
        let mut mantissa: i128 = 0;
        let mut overflow = false;
        for d in int_digits.bytes().chain(frac_digits.bytes()) {
            match mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(d - b'0')))
            {
                Some(m) => mantissa = m,
                None => {
                    overflow = true;
                    break;
                }
            }
        }
        let magnitude = if overflow {
            i128::MAX
        } else {
            let frac_len = i64::try_from(frac_digits.len()).unwrap_or(i64::MAX);
            scale_to_nanos(mantissa, exp10.saturating_sub(frac_len), exp2)
        };
        Ok(Quantity {
            nanos: if negative { -magnitude } else { magnitude },
        })
    }

    pub fn from_millis(millis: i64) -> Quantity {
        Quantity {
            nanos: i128::from(millis) * NANOS_PER_MILLI,
        }
    }

    pub fn from_value(value: i64) -> Quantity {
        Quantity {
            nanos: i128::from(value) * NANOS_PER_UNIT,
        }
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// The value in whole units, rounded up (upstream Quantity.Value()).
    pub fn value(&self) -> i64 {
        scaled_round_up(self.nanos, NANOS_PER_UNIT)
    }

    /// The value in thousandths, rounded up (upstream Quantity.MilliValue()).
    pub fn milli_value(&self) -> i64 {
        scaled_round_up(self.nanos, NANOS_PER_MILLI)
    }

    /// The value in nano-units (1 = 1e-9).
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    pub(crate) fn add(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
        }
    }
}

/// Parses a quantity and returns its MilliValue (e.g. cpu "250m" → 250, "1" → 1000).
pub fn parse_quantity_to_millis(s: &str) -> Result<i64, QuantityError> {
    Ok(Quantity::parse(s)?.milli_value())
}

/// Parses a quantity and returns its Value (e.g. memory "1Gi" → 1073741824, "1k" → 1000).
pub fn parse_quantity_to_bytes(s: &str) -> Result<i64, QuantityError> {
    Ok(Quantity::parse(s)?.value())
}

fn parse_suffix(suffix: &str) -> Result<(i64, u32), QuantityError> {
    let decimal = |e: i64| Ok((e, 0));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => Ok((0, 10)),
        "Mi" => Ok((0, 20)),
        "Gi" => Ok((0, 30)),
        "Ti" => Ok((0, 40)),
        "Pi" => Ok((0, 50)),
        "Ei" => Ok((0, 60)),
        _ => {
            let rest = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))
                .filter(|r| !r.is_empty())
                .ok_or(QuantityError::Suffix)?;
            rest.parse::<i64>()
                .map(|e| (e, 0))
                .map_err(|_| QuantityError::Suffix)
        }
    }
}

/// mantissa * 10^exp10 * 2^exp2 in nanos, rounded up, saturating.
fn scale_to_nanos(mantissa: i128, exp10: i64, exp2: u32) -> i128 {
    if mantissa == 0 {
        return 0;
    }
    let Some(m) = mantissa.checked_mul(1i128 << exp2) else {
        return i128::MAX;
    };
    let e = exp10.saturating_add(9);
    if e >= 0 {
        let Ok(e) = u32::try_from(e) else {
            return i128::MAX;
        };
        10i128
            .checked_pow(e)
            .and_then(|p| m.checked_mul(p))
            .unwrap_or(i128::MAX)
    } else {
        let Some(d) = u32::try_from(-e).ok().and_then(|e| 10i128.checked_pow(e)) else {
            return 1; // smaller than a nano: rounds up to 1n
        };
        (m + d - 1) / d
    }
}

/// nanos / unit, rounded away from zero, saturated to i64.
fn scaled_round_up(nanos: i128, unit: i128) -> i64 {
    let mag = nanos.unsigned_abs();
    let unit = unit.unsigned_abs();
    let q = mag.div_ceil(unit);
    let q = i64::try_from(q).unwrap_or(i64::MAX);
    if nanos < 0 {
        -q
    } else {
        q
    }
}
