package service

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"google.golang.org/grpc/codes"
)

// Sign-in with GitHub is a pair of browser redirects the auth service serves on its
// HTTP address (ADR 18). With the services apart, the gateway forwards /auth/ there
// (--auth-http-url), so that browsers and the web UI need only the gateway's address.
// Everything passes through as it is (redirects, the state cookie, the token page and
// its headers); X-Forwarded-For/-Host/-Proto are set for the auth service's logs.

// authProxyTimeout bounds one forwarded request: the callback exchanges the code
// and reads the user from GitHub, each under the auth service's own deadline.
const authProxyTimeout = 90 * time.Second

// ParseAuthHTTPURL checks --auth-http-url: http(s), a host, no credentials, query or fragment.
func ParseAuthHTTPURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, fmt.Errorf("--auth-http-url %q is not a URL", raw)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return nil, fmt.Errorf("--auth-http-url %q must be http://HOST:PORT or https://HOST:PORT", raw)
	case u.User != nil, u.RawQuery != "", u.Fragment != "":
		return nil, fmt.Errorf("--auth-http-url %q must not have credentials, a query or a fragment", u.Redacted())
	}
	return u, nil
}

// authProxy forwards requests to the auth service at target.
func authProxy(target *url.URL, log *slog.Logger) http.Handler {
	transport := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		ResponseHeaderTimeout: authProxyTimeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   8,
	}
	p := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.SetXForwarded()
		},
		Transport: transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the browser went away
			}
			log.Warn("auth service unreachable for sign-in", "path", r.URL.Path, "err", err)
			writeError(w, http.StatusBadGateway, codes.Unavailable, "the auth service did not answer: try signing in again in a moment")
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10) // sign-in is GETs; nothing large goes this way
		p.ServeHTTP(w, r)
	})
}
