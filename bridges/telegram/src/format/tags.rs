//! The open-tag stack both writers keep: output tags come from the
//! formatting each character wants, not from the input's structure, so the
//! output is balanced whatever the input.

use std::borrow::Borrow;

/// A tag a writer can open. Its rank orders nesting: a tag never opens
/// inside one of a higher rank (blocks outside inline tags).
pub(super) trait Rank {
    /// The rank of inline tags, which may nest in any order among
    /// themselves.
    const INLINE: u8;

    fn rank(&self) -> u8;
}

/// How many of the `open` tags (outermost first) can stay open for text
/// that wants `wanted` (sorted by rank): the longest run of open tags that
/// are still wanted and that no missing tag of a lower rank must enclose.
/// The writer closes the others, then opens the missing wanted tags in
/// order.
pub(super) fn keep<T: PartialEq + Rank, W: Borrow<T>>(open: &[T], wanted: &[W]) -> usize {
    let lowest_missing = wanted
        .iter()
        .map(Borrow::borrow)
        .filter(|tag| !open.contains(tag))
        .map(Rank::rank)
        .min()
        .unwrap_or(u8::MAX);
    open.iter()
        .take_while(|tag| {
            let rank = tag.rank();
            wanted.iter().any(|w| w.borrow() == *tag)
                && (rank < lowest_missing || (rank == lowest_missing && rank == T::INLINE))
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum T {
        Quote,
        Pre,
        B,
        I,
    }

    impl Rank for T {
        const INLINE: u8 = 2;

        fn rank(&self) -> u8 {
            match self {
                T::Quote => 0,
                T::Pre => 1,
                T::B | T::I => 2,
            }
        }
    }

    #[test]
    fn keep_table() {
        use T::*;
        let cases: &[(&[T], &[T], usize)] = &[
            (&[], &[B], 0),
            (&[B], &[B], 1),
            (&[B], &[B, I], 1),
            (&[I], &[B, I], 1),
            (&[B, I], &[I], 0),
            (&[B, I], &[B], 1),
            (&[B], &[Quote, B], 0),
            (&[Quote, B], &[Quote, B, I], 2),
            (&[Quote, B], &[Quote, Pre], 1),
            (&[Pre], &[Quote, Pre], 0),
            (&[Quote, Pre], &[Pre], 0),
            (&[Quote], &[], 0),
        ];
        for (open, wanted, want) in cases {
            assert_eq!(keep(open, wanted), *want, "{open:?} -> {wanted:?}");
        }
    }
}
