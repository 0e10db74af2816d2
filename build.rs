// The shipped cases, schemas and report template are compiled into the binary (include_dir,
// askama); tell cargo to rebuild when any file under them changes, including new files.
fn main() {
    println!("cargo:rerun-if-changed=cases");
    println!("cargo:rerun-if-changed=schemas");
    println!("cargo:rerun-if-changed=templates");
}
