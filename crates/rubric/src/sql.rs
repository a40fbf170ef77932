//! Rows: a [`Rubric`] or [`RubricScores`] reads the columns named after its fields, so a struct
//! deriving `sqlx::FromRow` holds one with `#[sqlx(flatten)]`. `T = Option<f32>` reads nullable
//! columns (a LEFT JOIN's missing scores).

use sqlx::{ColumnIndex, Decode, FromRow, Row, Type};

use crate::{Rubric, RubricScores};

impl<'r, R, T> FromRow<'r, R> for Rubric<T>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Rubric::names().try_map(|name| row.try_get(name))
    }
}

impl<'r, R, T> FromRow<'r, R> for RubricScores<T>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        RubricScores::names().try_map(|name| row.try_get(name))
    }
}
