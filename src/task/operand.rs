//! Operands drawn the Keras way, shared by the arithmetic and expression tasks.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// One operand the Keras way: a length uniform in min_digits..=digits, then that many uniform
/// digits (leading zeros collapse, so short numbers are common). The digits are drawn as one
/// uniform number below 10^length: the same distribution as drawing them one at a time. With
/// `min_digits` above 1 the number is uniform in 10^(min_digits-1)..10^length instead, so it
/// never has fewer than `min_digits` digits. With `min_digits = 1` the draws are Keras's, and
/// the same random numbers as before `min_digits` existed.
pub(crate) fn draw_operand(rng: &mut ChaCha8Rng, min_digits: usize, digits: usize) -> u128 {
    let len = rng.random_range(min_digits..=digits);
    rng.random_range(operand_floor(min_digits)..pow10(len))
}

/// `10^n`.
pub(crate) fn pow10(n: usize) -> u128 {
    10u128.pow(n as u32)
}

/// Decimal digits of `v` as written (0 has one).
pub(crate) fn decimal_len(mut v: u128) -> usize {
    let mut len = 1;
    while v >= 10 {
        v /= 10;
        len += 1;
    }
    len
}

/// How many values an operand can take with lengths in `min_digits..=digits`.
pub(crate) fn operand_values(min_digits: usize, digits: usize) -> u128 {
    if digits == 0 || min_digits > digits || digits > super::MAX_DIGITS {
        return 0;
    }
    pow10(digits) - operand_floor(min_digits)
}

/// The smallest operand: 0, or `10^(min_digits-1)` when operands must have `min_digits` digits.
pub(crate) fn operand_floor(min_digits: usize) -> u128 {
    if min_digits <= 1 {
        0
    } else {
        pow10(min_digits - 1)
    }
}
