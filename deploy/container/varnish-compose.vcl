vcl 4.1;
# compose.yaml's Varnish: the shipped deploy/varnish/herald.vcl, unchanged, with the one
# backend that deploy/varnish/varnish.sh would otherwise write into its #@ORIGINS@ and
# #@ORIGIN_MEMBERS@ markers. Mounted as /etc/varnish/default.vcl, herald.vcl beside it.
# The host name is resolved once, when the VCL loads: restart Varnish after recreating Herald.

backend herald1 {
    .host = "herald";
    .port = "8080";
    # Longer than Herald's longest long-poll (HERALD_MAX_WAIT_S, 60 s), as varnish.sh sets it.
    .first_byte_timeout = 75s;
    .between_bytes_timeout = 75s;
}

include "herald.vcl";

# Runs after herald.vcl's vcl_init, which creates the `origin` director.
sub vcl_init {
    origin.add_backend(herald1);
}
