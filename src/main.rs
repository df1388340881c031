fn main() {
    println!("smimekit skeleton");
}
