// Package netguard keeps outbound connections that a tenant can aim (a project's
// repository URL, anything the forge fetches) away from the server's own
// neighbourhood: loopback, private, link-local (and so cloud metadata), carrier-grade
// NAT, multicast and reserved addresses are refused unless the operator allows a
// network (--allow-repo-network CIDR).
//
// The check happens where the connection is made, on the address actually dialled,
// so a name that resolves to a public address when checked and to 127.0.0.1 when
// used (DNS rebinding) is still refused: [Guard.Dialer] checks in the dialer's
// Control hook, and [Guard.Resolve] returns the checked addresses for a caller that
// pins a subprocess to them (package forge/local does so for git).
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// ErrForbidden is wrapped by every refusal; test with errors.Is.
var ErrForbidden = errors.New("address not allowed")

// forbidden are the ranges a connection may not reach unless allowed. IPv4-mapped
// IPv6 addresses are unmapped before the check, so ::ffff:127.0.0.1 is loopback.
var forbidden = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (cloud metadata)"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible (deprecated)"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64 (may reach IPv4 internals)"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64 (may reach IPv4 internals)"},
	{netip.MustParsePrefix("fc00::/7"), "unique local (private)"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "cloud metadata"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local (deprecated, private)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// Guard decides which addresses outbound connections may reach. The zero value
// refuses every forbidden range and allows the rest; it is safe for concurrent use.
type Guard struct {
	allow []netip.Prefix
	// LookupNetIP resolves names; nil uses net.DefaultResolver. Tests replace it.
	LookupNetIP func(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// New returns a guard that also allows the networks in allow.
func New(allow []netip.Prefix) *Guard {
	return &Guard{allow: append([]netip.Prefix(nil), allow...)}
}

// ParseNetworks parses CIDRs ("10.1.0.0/16", "fd12::/64") or single addresses
// for New, naming the first that does not parse.
func ParseNetworks(cidrs []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, c := range cidrs {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		if p, err := netip.ParsePrefix(c); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(c)
		if err != nil {
			return nil, fmt.Errorf("network %q: not a CIDR (such as 10.1.0.0/16) or an address", c)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Check returns nil when a connection may reach addr, else an error wrapping
// ErrForbidden that names the kind of address.
func (g *Guard) Check(addr netip.Addr) error {
	addr = addr.Unmap().WithZone("")
	if !addr.IsValid() {
		return fmt.Errorf("%w: invalid address", ErrForbidden)
	}
	if g != nil {
		for _, p := range g.allow {
			if p.Contains(addr) {
				return nil
			}
		}
	}
	for _, f := range forbidden {
		if f.prefix.Contains(addr) {
			return fmt.Errorf("%w: %s is a %s address (an operator may allow it with --allow-repo-network)", ErrForbidden, addr, f.what)
		}
	}
	return nil
}

// Resolve returns the addresses of host (a name or an address literal), refusing
// the lot when any of them is forbidden: a name that answers with a public and a
// loopback address could be dialled at either.
func (g *Guard) Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if a, err := netip.ParseAddr(host); err == nil {
		if err := g.Check(a); err != nil {
			return nil, err
		}
		return []netip.Addr{a.Unmap()}, nil
	}
	lookup := net.DefaultResolver.LookupNetIP
	if g != nil && g.LookupNetIP != nil {
		lookup = g.LookupNetIP
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	addrs, err := lookup(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, scrubDNSError(err))
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if err := g.Check(a); err != nil {
			return nil, fmt.Errorf("host %s: %w", host, err)
		}
		out = append(out, a.Unmap())
	}
	return out, nil
}

// scrubDNSError keeps the resolver's verdict and drops the resolver's own address.
func scrubDNSError(err error) error {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		switch {
		case dnsErr.IsNotFound:
			return errors.New("no such host")
		case dnsErr.IsTimeout:
			return errors.New("lookup timed out")
		}
		return errors.New("lookup failed")
	}
	return err
}

// Control is a net.Dialer Control hook: it refuses a connection to a forbidden
// address after resolution, just before connect(2), so what is checked is what is
// dialled.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrForbidden, err)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %s is not an address", ErrForbidden, host)
	}
	return g.Check(a)
}

// Dialer returns a dialer that refuses forbidden addresses at connect time, for
// an http.Transport's DialContext or any other outbound client. Proxies from the
// environment bypass it: give the transport Proxy: nil.
func (g *Guard) Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, Control: g.Control}
}
