vcl 4.1;
# Varnish in front of Herald, the way a CDN fronts it: the origin's Cache-Control decides
# what is kept and for how long; concurrent misses of one URL wait for one origin request
# (long-polls included); streams and WebSockets go straight through, unbuffered; PURGE with a
# Surrogate-Key header drops every object tagged with one of its keys.
# varnish.sh writes the backends and the `origin` director below from PROXY_ORIGINS.

import directors;
import std;

#@ORIGINS@

# Who may purge: Herald instances on this host. A TLS terminator on the same host (hitch,
# nginx) makes every client look like 127.0.0.1: give it the PROXY protocol (varnishd
# -a :6086,PROXY) so client.ip is the real client, or this ACL lets anyone purge.
acl purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_init {
    new origin = directors.round_robin();
    #@ORIGIN_MEMBERS@
}

sub vcl_recv {
    set req.backend_hint = origin.backend();
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "Purging is for the origin's own hosts"));
        }
        if (!req.http.Surrogate-Key) {
            return (purge);
        }
        # Herald's tags are topic names and URL-quoted keys: of the regex characters only
        # "." can occur. Any one of the space-separated keys must match a whole key.
        if (req.http.Surrogate-Key !~ "^[A-Za-z0-9._~%/ -]+$") {
            return (synth(400, "Surrogate-Key: space-separated keys of A-Za-z0-9._~%/-"));
        }
        set req.http.X-Keys = regsuball(req.http.Surrogate-Key, "[.]", "[.]");
        set req.http.X-Keys = regsuball(req.http.X-Keys, " +", "|");
        # A ban expression ends its argument at a space: the regex must hold none.
        if (!std.ban("obj.http.Surrogate-Key ~ (^|\s)(" + req.http.X-Keys + ")(\s|$)")) {
            return (synth(500, "Purge failed: " + std.ban_error()));
        }
        return (synth(200, "Purged"));
    }
    if (req.url ~ "^/(metrics|healthz|readyz)(\?|$)") {
        # For the load balancer and the scraper, on Herald's own port: not for the public.
        return (synth(404, "Not Found"));
    }
    if (req.http.Upgrade ~ "(?i)websocket") {
        return (pipe);
    }
    if (req.url ~ "^/v1/topics/[^/?]+/(snapshot|events)\?") {
        # One object per answer Herald can give: parameters it does not read are dropped
        # (else ?x=<random> would miss the cache every time, and could fill it with copies
        # of year-long immutable pages), and the rest are put in one order.
        set req.url = regsuball(req.url, "(?<=[?&])(?!(?:key|after|limit|wait|mode|access_token)=)[^&]*(&|$)", "");
        set req.url = regsub(req.url, "[?&]+$", "");
        set req.url = std.querysort(req.url);
    }
    if (req.url ~ "^/v1/topics/[^/?]+/stream") {
        # Server-Sent Events: one origin stream per client, passed through as it comes.
        return (pass);
    }
    # The built-in rules follow: only GET and HEAD are cached, and a request with
    # Authorization or a Cookie is never answered from the cache.
}

sub vcl_pipe {
    if (req.http.Upgrade) {
        set bereq.http.Upgrade = req.http.Upgrade;
        set bereq.http.Connection = req.http.Connection;
    }
}

sub vcl_backend_response {
    if (bereq.url ~ "^/v1/topics/[^/?]+/stream") {
        set beresp.do_stream = true;
        set beresp.uncacheable = true;
        return (deliver);
    }
    if (beresp.http.ETag) {
        # Past its grace an object is still kept to revalidate with If-None-Match: the
        # origin answers 304 and the body need not travel again.
        set beresp.keep = 10m;
    }
}

sub vcl_deliver {
    # How the cache served this answer, for people and tests to read.
    if (obj.uncacheable) {
        set resp.http.X-Cache = "PASS";
    } elsif (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
    # Tags are for the cache, not for browsers.
    unset resp.http.Surrogate-Key;
    unset resp.http.Cache-Tag;
    # A kept answer carries the request id of the request that fetched it: not this one's.
    if (obj.hits > 0) {
        unset resp.http.X-Request-Id;
    }
}
