// The shipped cases and schemas (in the repository root) are compiled into the loader
// (include_dir); tell cargo to rebuild when any file under them changes, including new files.
fn main() {
    println!("cargo:rerun-if-changed=../cases");
    println!("cargo:rerun-if-changed=../schemas");
}
