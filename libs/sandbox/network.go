package sandbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The job's network. Every job has a network namespace of its own; with
// [Options.Network] a user-mode network stack (slirp4netns, one per job,
// run by the sandbox in the host's namespace) is its only way out:
//
//	job ──tap0──▶ slirp4netns (host side: ordinary sockets) ──▶ the destination
//
// slirp4netns runs with --disable-host-loopback (its gateway 10.0.2.2 does
// not lead to the host's 127.0.0.1) and, after it made tap0, in a sandbox
// of its own (--enable-sandbox: an empty root, no capabilities but
// CAP_NET_BIND_SERVICE; --enable-seccomp). It does not filter the host's
// own addresses or private ranges; the sandbox does that in the job's
// namespace with routes of type prohibit (the job gets EACCES at once) for
// every range in [DeniedRanges], the host's own IPv4 addresses and the
// operator's [Options.DenyNetworks]. The namespace belongs to root's user
// namespace: the job has no CAP_NET_ADMIN in it and cannot change a route.
// IPv6 has no route out (slirp4netns runs without --enable-ipv6).

// slirpSubnet is slirp4netns's default network; the job is 10.0.2.100, the
// gateway 10.0.2.2 and the DNS forwarder 10.0.2.3.
const (
	slirpGateway = "10.0.2.2"
	slirpDNS     = "10.0.2.3"
	// slirpDevice is the job's interface.
	slirpDevice = "tap0"
)

// DeniedRanges are the IPv4 ranges a job with the network on cannot reach,
// besides the host's own addresses and the operator's: "this network",
// the private ranges (RFC 1918), shared address space (RFC 6598),
// link-local (169.254.0.0/16, where cloud metadata services answer),
// multicast and reserved. [Options.AllowNetworks] may open parts of the
// private and shared ranges ([PrivateRanges]) again.
var DeniedRanges = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/3"),
}

// PrivateRanges are the ranges of [DeniedRanges] an operator may allow
// (all or parts of them) with [Options.AllowNetworks].
var PrivateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
}

// ParseNetworks parses CIDR ranges (an operator's flag values) for
// [Options.DenyNetworks] or, with allow, [Options.AllowNetworks], which must
// lie within [PrivateRanges]. The error names the bad value and why.
func ParseNetworks(values []string, allow bool) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		p, err := netip.ParsePrefix(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("network %q: not a CIDR range such as 10.1.0.0/16", v)
		}
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("network %q: only IPv4 ranges (jobs have no IPv6 route out)", v)
		}
		p = p.Masked()
		if allow && !slices.ContainsFunc(PrivateRanges, func(r netip.Prefix) bool { return r.Bits() <= p.Bits() && r.Contains(p.Addr()) }) {
			return nil, fmt.Errorf("network %q: only parts of the private ranges (10.0.0.0/8, 100.64.0.0/10, 172.16.0.0/12, 192.168.0.0/16) can be allowed", v)
		}
		out = append(out, p)
	}
	return out, nil
}

// hostAddresses are the host's own IPv4 addresses, loopback aside (in the
// job's namespace 127.0.0.0/8 is the job's own loopback).
func hostAddresses() []netip.Prefix {
	addrs, _ := net.InterfaceAddrs()
	var out []netip.Prefix
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if ip.Is4() && !ip.IsLoopback() {
			out = append(out, netip.PrefixFrom(ip, 32))
		}
	}
	return out
}

// deniedFor is every range a job may not reach: the defaults, the host's
// own addresses and the operator's.
func deniedFor(opts Options) []netip.Prefix {
	out := slices.Clone(DeniedRanges)
	out = append(out, hostAddresses()...)
	out = append(out, opts.DenyNetworks...)
	return out
}

// slirp is the job's user-mode network stack, one slirp4netns process.
type slirp struct {
	cmd  *exec.Cmd
	exit *os.File // closing it makes slirp4netns exit (--exit-fd)
	done chan struct{}
	out  *syncBuffer
}

// startSlirp starts slirp4netns for the network namespace at nsPath and
// returns once it configured tap0 (address, default route via 10.0.2.2). It
// runs in the runner's network namespace (the caller is not on the
// launcher thread) and outside the job's cgroups: a Kill of the job's
// processes leaves the network of its later commands alone. It exits when
// Close closes its exit descriptor, or when the runner dies (the kernel
// closes it then).
func startSlirp(bin, nsPath string) (*slirp, error) {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer readyR.Close()
	exitR, exitW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return nil, err
	}
	sl := &slirp{exit: exitW, done: make(chan struct{}), out: &syncBuffer{}}
	cmd := exec.Command(bin, "--configure", "--mtu=65520", "--disable-host-loopback",
		"--enable-sandbox", "--enable-seccomp", "--ready-fd=3", "--exit-fd=4",
		"--netns-type=path", nsPath, slirpDevice)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = sl.out, sl.out
	cmd.ExtraFiles = []*os.File{readyW, exitR}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.WaitDelay = time.Second
	sl.cmd = cmd
	err = cmd.Start()
	readyW.Close()
	exitR.Close()
	if err != nil {
		exitW.Close()
		return nil, fmt.Errorf("start slirp4netns: %w", err)
	}
	go func() {
		_ = cmd.Wait()
		close(sl.done)
	}()
	_ = readyR.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	if _, err := io.ReadFull(readyR, b[:]); err != nil || b[0] != '1' {
		sl.stop()
		msg := sl.out.String()
		return nil, fmt.Errorf("slirp4netns did not get ready (%v): %s", err, msg)
	}
	return sl, nil
}

// stop ends slirp4netns and waits for it: EOF on its exit descriptor, then
// SIGKILL after a second.
func (sl *slirp) stop() error {
	if sl == nil {
		return nil
	}
	sl.exit.Close()
	select {
	case <-sl.done:
		return nil
	case <-time.After(time.Second):
	}
	_ = sl.cmd.Process.Kill()
	select {
	case <-sl.done:
		return nil
	case <-time.After(killTimeout):
		return fmt.Errorf("slirp4netns (pid %d) survives SIGKILL", sl.cmd.Process.Pid)
	}
}

// addRoute adds an IPv4 route to the main table of the calling thread's
// network namespace: of type unix.RTN_PROHIBIT (connect fails with EACCES),
// or unix.RTN_UNICAST through gw. It is `ip route add prohibit DST` or `ip
// route add DST via GW` over rtnetlink.
func addRoute(dst netip.Prefix, typ uint8, gw netip.Addr) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	attr := func(b []byte, typ uint16, data []byte) []byte {
		n := unix.SizeofRtAttr + len(data)
		b = binary.NativeEndian.AppendUint16(b, uint16(n))
		b = binary.NativeEndian.AppendUint16(b, typ)
		b = append(b, data...)
		for len(b)%unix.NLMSG_ALIGNTO != 0 {
			b = append(b, 0)
		}
		return b
	}
	body := []byte{unix.AF_INET, byte(dst.Bits()), 0, 0, unix.RT_TABLE_MAIN, unix.RTPROT_STATIC, unix.RT_SCOPE_UNIVERSE, typ}
	body = binary.NativeEndian.AppendUint32(body, 0) // flags
	a := dst.Addr().As4()
	body = attr(body, unix.RTA_DST, a[:])
	if gw.IsValid() {
		g := gw.As4()
		body = attr(body, unix.RTA_GATEWAY, g[:])
	}
	msg := binary.NativeEndian.AppendUint32(nil, uint32(unix.SizeofNlMsghdr+len(body)))
	msg = binary.NativeEndian.AppendUint16(msg, unix.RTM_NEWROUTE)
	msg = binary.NativeEndian.AppendUint16(msg, unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	msg = binary.NativeEndian.AppendUint32(msg, 1) // seq
	msg = binary.NativeEndian.AppendUint32(msg, 0) // pid
	msg = append(msg, body...)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	tv := unix.Timeval{Sec: 5}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if m.Header.Type == unix.NLMSG_ERROR && len(m.Data) >= 4 {
			if e := int32(binary.NativeEndian.Uint32(m.Data[:4])); e != 0 {
				return syscall.Errno(-e)
			}
			return nil
		}
	}
	return errors.New("no answer from rtnetlink")
}

// denyRoutes adds a prohibit route for each range in the calling thread's
// network namespace.
func denyRoutes(denied []netip.Prefix) error {
	for _, p := range denied {
		if err := addRoute(p, unix.RTN_PROHIBIT, netip.Addr{}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("deny %s: %w", p, err)
		}
	}
	return nil
}

// allowRoutes routes the allowed ranges through slirp4netns's gateway; a
// more specific denied range (the host's own addresses, an operator's
// --deny-network) still wins, being the longer prefix.
func allowRoutes(allowed []netip.Prefix) error {
	gw := netip.MustParseAddr(slirpGateway)
	for _, p := range allowed {
		if err := addRoute(p, unix.RTN_UNICAST, gw); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("allow %s: %w", p, err)
		}
	}
	return nil
}

// setupNetwork gives the launcher's network namespace its way out: the
// prohibit routes first (so nothing leaves before they are there), then
// slirp4netns, then the allowed ranges. The caller holds no lock.
func (s *Sandbox) setupNetwork(bin string) error {
	var err error
	denied := deniedFor(s.opts) // the host's addresses: read here, in the host's namespace
	s.l.do(func() { err = denyRoutes(denied) })
	if err != nil {
		return fmt.Errorf("network filter: %w", err)
	}
	nsPath := "/proc/" + strconv.Itoa(os.Getpid()) + "/task/" + strconv.Itoa(s.l.tid) + "/ns/net"
	s.slirp, err = startSlirp(bin, nsPath)
	if err != nil {
		return err
	}
	s.l.do(func() { err = allowRoutes(s.opts.AllowNetworks) })
	if err != nil {
		return fmt.Errorf("network filter: %w", err)
	}
	// The job resolves names through slirp4netns's forwarder: the host's
	// resolver may well be in a denied range.
	return os.WriteFile(s.resolvConf(), []byte("nameserver "+slirpDNS+"\n"), 0o644)
}

func (s *Sandbox) resolvConf() string { return s.dir + "/resolv.conf" }
