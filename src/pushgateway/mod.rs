pub mod grouping;
