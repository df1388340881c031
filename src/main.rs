//! The `smimekit` command: a thin shell over the library. Exit codes: 0 success, 1 a negative cryptographic
//! verdict, 2 any error.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
