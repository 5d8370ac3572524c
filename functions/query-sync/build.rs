//! Compiles the files of `queries/` into the function, so that a changed query changes the binary,
//! hence the function version the stack's custom resource names, hence what CloudFormation sees.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../queries");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut code = String::from("/// Every file of queries/: (path relative to queries/, text).\npub const FILES: &[(&str, &str)] = &[\n");
    for sub in ["insights", "athena"] {
        let dir = root.join(sub);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut paths: Vec<_> = std::fs::read_dir(&dir).expect("queries/ is beside functions/").map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.is_file()) {
            println!("cargo:rerun-if-changed={}", path.display());
            let name = path.file_name().unwrap().to_string_lossy();
            writeln!(code, "    ({:?}, include_str!({:?})),", format!("{sub}/{name}"), path.canonicalize().unwrap()).unwrap();
        }
    }
    code.push_str("];\n");
    std::fs::write(Path::new(&std::env::var("OUT_DIR").unwrap()).join("queries.rs"), code).unwrap();
}
