{
  description = "greeter: a greeting API with an admin, built with crane into minimal OCI images";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    crane.url = "github:ipetkov/crane";
    # rust-overlay reads rust-toolchain.toml, so Nix builds with the exact toolchain
    # that rustup gives a developer outside Nix.
    rust-overlay = {
      url = "github:oxalica/rust-overlay";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    # Nix calls outputs with every input *and* `self` (NixOS/nix call-flake.nix:
    # `flake.outputs (inputs // { self = result; })`); `...` takes `self` without an
    # unused binding. scripts/test-nix.sh calls it the same way.
    {
      nixpkgs,
      crane,
      rust-overlay,
      ...
    }:
    let
      inherit (nixpkgs) lib;

      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "aarch64-darwin"
        "x86_64-darwin"
      ];

      # Everything for one system, evaluated once and shared by all outputs below.
      perSystem =
        system:
        let
          pkgs = import nixpkgs {
            inherit system;
            overlays = [ (import rust-overlay) ];
          };
          rust = import ./nix/rust.nix {
            inherit pkgs crane;
            root = ./.;
          };
          images = import ./nix/images.nix {
            inherit pkgs rust;
          };
          apps = import ./nix/apps.nix { inherit pkgs rust; };
        in
        {
          packages = import ./nix/packages.nix { inherit pkgs rust images; };
          devShells.default = import ./nix/shell.nix { inherit pkgs rust; };
          apps = lib.mapAttrs (_: drv: {
            type = "app";
            program = lib.getExe drv;
            meta.description = drv.meta.description;
          }) apps;
          checks = import ./nix/checks.nix {
            inherit pkgs rust apps;
            root = ./.;
          };
          formatter = pkgs.nixfmt-tree;
        };

      bySystem = lib.genAttrs systems perSystem;
      output = name: lib.mapAttrs (_: outputs: outputs.${name}) bySystem;
    in
    {
      packages = output "packages";
      devShells = output "devShells";
      apps = output "apps";
      checks = output "checks";
      formatter = output "formatter";
    };
}
