# The Rust builds, all with crane: one dependency build per target, reused by the
# packages and by the checks.
{
  pkgs,
  crane,
  root,
}:
let
  inherit (pkgs) lib;

  # The toolchain pinned in rust-toolchain.toml (channel, components), so `nix build` and a
  # developer's rustup compile with the same rustc.
  toolchainFor = p: p.rust-bin.fromRustupToolchainFile (root + "/rust-toolchain.toml");
  craneLib = (crane.mkLib pkgs).overrideToolchain toolchainFor;

  # Cargo sources plus what the crate embeds at compile time: refinery reads migrations/,
  # and the admin's templates/ and static/ are embedded too. Everything else (chart/,
  # docs, nix/) stays out, so editing it does not rebuild the binaries.
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      (craneLib.fileset.commonCargoSources root)
      (root + "/migrations")
      (lib.fileset.maybeMissing (root + "/templates"))
      (lib.fileset.maybeMissing (root + "/static"))
    ];
  };

  cargoToml = lib.importTOML (root + "/Cargo.toml");
  inherit (cargoToml.package) version repository;
  pname = cargoToml.package.name;

  commonArgs = {
    inherit src pname version;
    strictDeps = true;
    buildInputs = lib.optionals pkgs.stdenv.hostPlatform.isDarwin [ pkgs.libiconv ];
  };

  # Splits a build of both binaries into one package per binary, so each image (and
  # `nix run .#greeter`) holds only its own executable.
  splitBinaries =
    all:
    lib.genAttrs [ "greeter" "greeter-migrate" ] (
      bin:
      pkgs.runCommand "${bin}-${version}"
        {
          meta = {
            mainProgram = bin;
            description = "greeter ${bin} binary";
          };
        }
        ''
          install -Dm755 ${all}/bin/${bin} $out/bin/${bin}
        ''
    );

  # Native build (the host's libc): the packages, `nix run`, and the checks.
  cargoArtifacts = craneLib.buildDepsOnly commonArgs;
  all = craneLib.buildPackage (
    commonArgs
    // {
      inherit cargoArtifacts;
      # The tests need PostgreSQL and run in the `tests` check instead.
      doCheck = false;
    }
  );

  # Static musl build for the images (Linux only): one self-contained executable, no
  # libc in the image. The toolchain is the same pinned one plus the musl std library
  # (crane's examples/cross-musl). ring compiles a little C: cc-rs would look for a
  # `<arch>-linux-musl-gcc`, so point it at the stdenv compiler, whose objects only need
  # memcpy/memset from musl; fortify is off because musl has no __*_chk symbols. rustc
  # links musl targets with its bundled self-contained crt and libc.
  muslTarget = "${pkgs.stdenv.hostPlatform.parsed.cpu.name}-unknown-linux-musl";
  craneLibMusl = (crane.mkLib pkgs).overrideToolchain (
    p: (toolchainFor p).override { targets = [ muslTarget ]; }
  );
  staticArgs = commonArgs // {
    pname = "${pname}-static";
    CARGO_BUILD_TARGET = muslTarget;
    CARGO_BUILD_RUSTFLAGS = "-C target-feature=+crt-static";
    "CC_${builtins.replaceStrings [ "-" ] [ "_" ] muslTarget}" = "cc";
    hardeningDisable = [ "fortify" ];
    # Tests run natively in the checks; nothing to gain from running them twice.
    doCheck = false;
  };
  staticAll = craneLibMusl.buildPackage (
    staticArgs
    // {
      cargoArtifacts = craneLibMusl.buildDepsOnly staticArgs;
    }
  );
in
{
  inherit
    craneLib
    src
    commonArgs
    cargoArtifacts
    version
    repository
    ;
  toolchain = toolchainFor pkgs;
  native = splitBinaries all;
  static = lib.optionalAttrs pkgs.stdenv.hostPlatform.isLinux (splitBinaries staticAll);
}
