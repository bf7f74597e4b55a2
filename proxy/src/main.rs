//! The `holdfast` binary: a thin shell over the library's command line.

fn main() {
    match holdfast::cli::main() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("holdfast: {e:#}");
            std::process::exit(1);
        }
    }
}
