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
  # (crane's examples/cross-musl). ring and mimalloc compile C (mimalloc calls strtol,
  # among others), so every C object must be compiled against musl's headers: with the
  # glibc stdenv's GCC 15 (gnu23) glibc redirects strtol to __isoc23_strtol, which musl's
  # libc.a lacks, and the final link fails. So cc-rs and ar are the musl cross toolchain
  # of pkgsStatic (x86_64- or aarch64-unknown-linux-musl, after the host), the CC_/AR_
  # variables crane's lib/mkCrossToolchainEnv.nix sets for a cross target. The linker
  # stays rustc's default, as in crane's examples/cross-musl: with +crt-static rustc links
  # musl self-contained (its own crt objects and libc.a) into a static PIE. A musl gcc as
  # linker is not needed and can produce a dynamic PIE (Debian's musl-gcc gives one with
  # an /lib/ld-musl interpreter); scripts/test-static.sh builds the same way and checks
  # that the binaries have no interpreter and no NEEDED entries.
  muslTarget = "${pkgs.stdenv.hostPlatform.parsed.cpu.name}-unknown-linux-musl";
  muslCc = pkgs.pkgsStatic.stdenv.cc;
  muslCcPrefix = "${muslCc}/bin/${muslCc.targetPrefix}";
  craneLibMusl = (crane.mkLib pkgs).overrideToolchain (
    p: (toolchainFor p).override { targets = [ muslTarget ]; }
  );
  staticArgs = commonArgs // {
    pname = "${pname}-static";
    CARGO_BUILD_TARGET = muslTarget;
    CARGO_BUILD_RUSTFLAGS = "-C target-feature=+crt-static";
    "CC_${builtins.replaceStrings [ "-" ] [ "_" ] muslTarget}" = "${muslCcPrefix}cc";
    "AR_${builtins.replaceStrings [ "-" ] [ "_" ] muslTarget}" = "${muslCcPrefix}ar";
    # musl has no __*_chk symbols for _FORTIFY_SOURCE.
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
