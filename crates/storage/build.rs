//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!` embeds the
//! `migrations` directory, and the compiler does not track a new file in it by itself.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
