//! Criterion benchmarks of Sightline's hot paths live in `benches/`; load tools for the media
//! plane will live here too. This library target is empty on purpose.
