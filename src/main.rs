fn main() {
    std::process::exit(bplmigrate::cli::main());
}
