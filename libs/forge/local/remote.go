package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/forge/netguard"
)

// remote is how git is to reach a URL repository: the URL to give it, and the
// configuration and environment that pin its connection to addresses the guard
// checked, so that a name resolving elsewhere by the time git connects (DNS
// rebinding) changes nothing.
type remote struct {
	url    string
	config []string // "-c", "key=value" pairs before the subcommand
	env    []string // added after Options.Env
}

var defaultPorts = map[string]string{"https": "443", "http": "80", "ssh": "22", "git": "9418"}

// remote resolves a URL repository's host and refuses it when any of its
// addresses is loopback, private, link-local, metadata or otherwise internal and
// not in Options.AllowNetworks (forge.ErrNotAllowed), or when it does not resolve
// (forge.ErrNotFound). The errors name the host, never the resolver.
//
// Pinning per transport: https and http through curl's resolve list
// (http.curloptResolve) with redirects off, so curl neither resolves the name
// again nor follows a redirect elsewhere; ssh through HostName (with the name kept
// as HostKeyAlias for known_hosts); git:// by giving git the address itself.
func (f *Forge) remote(ctx context.Context, r repository) (remote, error) {
	u, err := url.Parse(r.url)
	if err != nil {
		return remote{}, fmt.Errorf("%w: repository %s is not a valid URL", forge.ErrInvalid, r)
	}
	scheme := strings.ToLower(u.Scheme)
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = defaultPorts[scheme]
	}
	addrs, err := f.guard.Resolve(ctx, host)
	if errors.Is(err, netguard.ErrForbidden) {
		return remote{}, fmt.Errorf("%w: repository %s: %v", forge.ErrNotAllowed, r, err)
	}
	if err != nil {
		return remote{}, fmt.Errorf("%w: repository %s: %v", forge.ErrNotFound, r, err)
	}
	rem := remote{url: r.url}
	switch scheme {
	case "https", "http":
		list := make([]string, len(addrs))
		for i, a := range addrs {
			list[i] = a.String()
			if a.Is6() {
				list[i] = "[" + list[i] + "]"
			}
		}
		rem.config = []string{"-c", "http.curloptResolve=" + host + ":" + port + ":" + strings.Join(list, ","),
			"-c", "http.followRedirects=false"}
	case "ssh":
		rem.env = []string{"GIT_SSH_COMMAND=" + f.sshCommand() + " -o HostKeyAlias=" + host + " -o HostName=" + addrs[0].String()}
	case "git":
		pinned := *u
		pinned.Host = net.JoinHostPort(addrs[0].String(), port)
		rem.url = pinned.String()
	}
	return rem, nil
}

// sshCommand is the operator's GIT_SSH_COMMAND (Options.Env) or the default.
func (f *Forge) sshCommand() string {
	cmd := "ssh -o BatchMode=yes"
	for _, kv := range f.env {
		if v, ok := strings.CutPrefix(kv, "GIT_SSH_COMMAND="); ok {
			cmd = v
		}
	}
	return cmd
}
