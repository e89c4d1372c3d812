# `nix run .#<app>`: thin writeShellApplication wrappers (so every script is shellchecked
# at build time) around the readable scripts in nix/apps/, which also run without Nix
# when their tools are on PATH.
{ pkgs, rust }:
let
  app =
    {
      script,
      description,
      runtimeInputs,
    }:
    pkgs.writeShellApplication {
      name = "greeter-${script}";
      inherit runtimeInputs;
      # lib.sh first: the script then skips sourcing it from its own directory.
      text = builtins.readFile ./apps/lib.sh + builtins.readFile (./apps + "/${script}.sh");
      # That `source` line is dead code here, and shellcheck cannot follow it in the store.
      excludeShellChecks = [ "SC1091" ];
      meta = {
        inherit description;
        mainProgram = "greeter-${script}";
      };
    };

  kube = [
    pkgs.kind
    pkgs.kubectl
    pkgs.coreutils
    pkgs.gnugrep
    pkgs.gnused
    pkgs.gawk
  ];
in
{
  default = app {
    script = "local";
    description = "Local mode: throwaway PostgreSQL, migrations, an admin, the server on 127.0.0.1:8080";
    runtimeInputs = [
      rust.native.greeter
      rust.native.greeter-migrate
      pkgs.postgresql
      pkgs.curl
      pkgs.coreutils
    ];
  };
  cluster-up = app {
    script = "cluster-up";
    description = "Create the kind cluster (1 control plane + 2 workers) with metrics-server";
    runtimeInputs = kube;
  };
  deploy = app {
    script = "deploy";
    description = "Build both images for the cluster, load them into kind, helm upgrade --install";
    runtimeInputs = kube ++ [ pkgs.kubernetes-helm ];
  };
  smoke = app {
    script = "smoke";
    description = "GET / and an admin login through the NodePort on localhost";
    runtimeInputs = kube ++ [ pkgs.curl ];
  };
  backup = app {
    script = "backup";
    description = "Run the backup CronJob now (pg_dump --format=custom) and copy the dump to ./backups/";
    runtimeInputs = kube;
  };
  restore = app {
    script = "restore";
    description = "Restore a dump into the cluster's database: app stopped, one transaction, migrations, app back";
    runtimeInputs = kube ++ [ pkgs.jq ];
  };
  cluster-down = app {
    script = "cluster-down";
    description = "Delete the kind cluster";
    runtimeInputs = kube;
  };
}
