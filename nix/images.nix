# OCI images (Linux systems only): each holds one static binary, CA certificates and a
# passwd/group entry for UID/GID 65532. No shell, no package manager, no libc.
#
# buildLayeredImage with compressor = "none": the output is the uncompressed
# docker-archive tar itself, built on the (Linux) builder, so a Mac only copies a file and
# `kind load image-archive` (which rejects gzip archives) loads it as is.
#
# Nothing commit-dependent is in the image config: the tag (the hash of the config) then
# depends only on the image's content. The commit is left out (a revision label would give
# every commit, docs included, a new tag and restart every pod); the same build keeps its
# tag whichever commit it was built from.
{
  pkgs,
  rust,
}:
let
  inherit (pkgs) lib dockerTools;

  uid = 65532;

  # The image runs as this numeric user (runAsNonRoot can verify a number); the entry
  # gives the user a name for anything that looks it up.
  nss = pkgs.fakeNss.override {
    extraPasswdLines = [ "greeter:x:${toString uid}:${toString uid}:greeter:/var/empty:/sbin/nologin" ];
    extraGroupLines = [ "greeter:x:${toString uid}:" ];
  };

  mkImage =
    {
      name,
      binary,
      ports,
      description,
    }:
    dockerTools.buildLayeredImage {
      inherit name;
      compressor = "none";
      # tag = null: the tag is the hash of this derivation, so every change is a new,
      # immutable tag and `imagePullPolicy: IfNotPresent` never runs a stale image.
      tag = null;
      # The binary is in contents too, so /bin/<name> exists and
      # `kubectl exec deploy/greeter -- greeter createsuperuser` finds it on PATH.
      contents = [
        binary
        dockerTools.caCertificates
        nss
      ];
      config = {
        Entrypoint = [ (lib.getExe binary) ];
        User = "${toString uid}:${toString uid}";
        ExposedPorts = lib.genAttrs ports (_: { });
        Env = [
          "PATH=/bin"
          "SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt"
        ];
        Labels = {
          "org.opencontainers.image.title" = name;
          "org.opencontainers.image.description" = description;
          "org.opencontainers.image.source" = rust.repository;
          "org.opencontainers.image.version" = rust.version;
          "org.opencontainers.image.licenses" = "MIT";
        };
      };
    };
in
lib.optionalAttrs pkgs.stdenv.hostPlatform.isLinux {
  image = mkImage {
    name = "greeter";
    binary = rust.static.greeter;
    ports = [
      "8080/tcp"
      "9090/tcp"
    ];
    description = "greeter HTTP server (run with the argument `serve`)";
  };
  migrate-image = mkImage {
    name = "greeter-migrate";
    binary = rust.static.greeter-migrate;
    ports = [ ];
    description = "greeter database migrator and migration gate (`--wait`)";
  };
}
