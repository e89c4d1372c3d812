# `nix flake check`: everything here builds in the sandbox, without network.
{
  pkgs,
  rust,
  apps,
  root,
}:
let
  inherit (pkgs) lib;
  inherit (rust) craneLib commonArgs cargoArtifacts;

  nixFiles = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.fileFilter (file: file.hasExt "nix") root;
  };
in
{
  inherit (rust.native) greeter greeter-migrate;

  clippy = craneLib.cargoClippy (
    commonArgs
    // {
      inherit cargoArtifacts;
      cargoClippyExtraArgs = "--all-targets -- --deny warnings";
    }
  );

  fmt = craneLib.cargoFmt { inherit (commonArgs) src pname version; };

  # The unit tests and the API integration tests against a real PostgreSQL: the test
  # harness runs initdb/postgres from PATH inside the sandbox. The browser test needs
  # Chromium and stays with scripts/test.sh.
  tests = craneLib.cargoTest (
    commonArgs
    // {
      inherit cargoArtifacts;
      cargoTestExtraArgs = "--lib --bins --test api";
      # The tests bind 127.0.0.1 (PostgreSQL, the server); the macOS sandbox allows it
      # only with this.
      __darwinAllowLocalNetworking = true;
      # initdb/pg_ctl for the throwaway database; openssl makes the TLS test's CA.
      nativeCheckInputs = [
        pkgs.postgresql
        pkgs.openssl
      ];
    }
  );

  # helm lint + render, then validate every rendered object against the Kubernetes
  # OpenAPI schemas. kubeconform would download its schemas, which the sandbox forbids, so
  # this check uses kubectl-validate, whose native-type schemas are compiled in (go:embed
  # builtins, pkg/openapiclient/hardcoded_builtins.go). Outside Nix, scripts/test-chart.sh
  # validates with kubernetes-validate (PyPI, schemas bundled); nothing runs kubeconform,
  # which the dev shell only offers for use by hand.
  chart =
    pkgs.runCommand "greeter-chart-check"
      {
        nativeBuildInputs = [
          pkgs.kubernetes-helm
          pkgs.kubectl-validate
        ];
        chart = lib.fileset.toSource {
          inherit root;
          fileset = root + "/chart";
        };
      }
      ''
        export HOME=$TMPDIR
        helm lint --strict "$chart/chart"
        helm template greeter "$chart/chart" --namespace greeter > rendered.yaml
        kubectl-validate rendered.yaml
        touch $out
      '';

  # Nix style: the official formatter (RFC 166) and no unused bindings.
  nix-style =
    pkgs.runCommand "greeter-nix-style"
      {
        nativeBuildInputs = [
          pkgs.nixfmt
          pkgs.deadnix
        ];
      }
      ''
        cd ${nixFiles}
        find . -name '*.nix' -print0 | xargs -0 nixfmt --check
        deadnix --fail .
        touch $out
      '';

  # Building the apps runs shellcheck on every script (writeShellApplication).
  apps = pkgs.linkFarmFromDrvs "greeter-apps" (lib.attrValues apps);
}
