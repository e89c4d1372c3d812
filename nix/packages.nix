# `nix build .#<name>`. The images exist on Linux systems only; on macOS, build them for
# the cluster's Linux with `.#packages.<arch>-linux.image` (needs a Linux builder).
{
  pkgs,
  rust,
  images,
}:
{
  inherit (rust.native) greeter greeter-migrate;
  default = rust.native.greeter;
}
// pkgs.lib.optionalAttrs pkgs.stdenv.hostPlatform.isLinux {
  inherit (images) image migrate-image;
  # The static executables inside the images, handy for inspecting their size.
  greeter-static = rust.static.greeter;
  greeter-migrate-static = rust.static.greeter-migrate;
}
