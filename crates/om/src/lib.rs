//! om facade (being assembled).
