//! A component that exports a world strata knows nothing about: loading it must fail with an
//! error that says which exports strata expected, not a panic.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        inline: "package test:other;\nworld greeter { export greet: func(name: string) -> string; }",
        world: "greeter",
    });

    struct Greeter;

    impl Guest for Greeter {
        fn greet(name: String) -> String {
            format!("hello, {name}")
        }
    }

    export!(Greeter);
}
