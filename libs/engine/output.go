package engine

import (
	"bytes"
	"encoding/base64"
	"sort"
	"sync"
	"time"
)

// Output chunking limits.
const (
	// MaxChunkSize is the largest LogChunk.Data.
	MaxChunkSize = 64 << 10
	// FlushInterval is the longest output waits before it is delivered.
	FlushInterval = 100 * time.Millisecond
)

const (
	streamStdout = "stdout"
	streamStderr = "stderr"
)

// mask replaces a secret in the output.
var mask = []byte("***")

// emitter serialises every call to the observer and numbers the chunks.
type emitter struct {
	mu     sync.Mutex
	obs    Observer
	seq    int64
	offset int64
}

func (e *emitter) stepStarted(i int, name string, at time.Time) {
	if e.obs == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.obs.StepStarted(i, name, at)
}

func (e *emitter) stepSkipped(i int, name, reason string) {
	if e.obs == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.obs.StepSkipped(i, name, reason)
}

func (e *emitter) stepFinished(i int, name string, r StepResult) {
	if e.obs == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.obs.StepFinished(i, name, r)
}

// log delivers data as one chunk; e.mu is held.
func (e *emitter) log(step int, stream string, data []byte) {
	if len(data) == 0 {
		return
	}
	e.seq++
	c := LogChunk{Step: step, Seq: e.seq, Offset: e.offset, Stream: stream, Data: bytes.Clone(data), At: time.Now()}
	e.offset += int64(len(data))
	if e.obs != nil {
		e.obs.Log(c)
	}
}

// stepOutput collects the output of one command. It holds at most one
// pending chunk (of one stream) and, per stream, a possible beginning of a
// secret.
type stepOutput struct {
	em      *emitter
	step    int
	pending []byte
	stream  string // of pending
	timer   *time.Timer
	armed   bool
	closed  bool
	maskers map[string]*masker
}

func (e *emitter) newStepOutput(step int, secrets [][]byte) *stepOutput {
	o := &stepOutput{em: e, step: step, pending: make([]byte, 0, 4096), maskers: map[string]*masker{}}
	for _, s := range []string{streamStdout, streamStderr} {
		o.maskers[s] = newMasker(secrets)
	}
	o.timer = time.AfterFunc(time.Hour, o.timerFlush)
	o.timer.Stop()
	return o
}

type streamWriter struct {
	o      *stepOutput
	stream string
}

func (o *stepOutput) writer(stream string) *streamWriter {
	return &streamWriter{o: o, stream: stream}
}

// Write is called by exec's copying goroutines, one per stream.
func (w *streamWriter) Write(p []byte) (int, error) {
	o := w.o
	o.em.mu.Lock()
	defer o.em.mu.Unlock()
	if o.closed {
		return len(p), nil
	}
	o.maskers[w.stream].write(p, false, func(b []byte) { o.append(w.stream, b) })
	return len(p), nil
}

// append adds masked output; em.mu is held.
func (o *stepOutput) append(stream string, b []byte) {
	if len(o.pending) > 0 && o.stream != stream {
		o.flush()
	}
	o.stream = stream
	for len(b) > 0 {
		n := min(len(b), MaxChunkSize-len(o.pending))
		o.pending = append(o.pending, b[:n]...)
		b = b[n:]
		if len(o.pending) >= MaxChunkSize {
			o.flush()
		}
	}
	if len(o.pending) > 0 && !o.armed {
		o.armed = true
		o.timer.Reset(FlushInterval)
	}
}

// flush delivers the pending chunk; em.mu is held.
func (o *stepOutput) flush() {
	o.em.log(o.step, o.stream, o.pending)
	o.pending = o.pending[:0]
	if o.armed {
		o.armed = false
		o.timer.Stop()
	}
}

func (o *stepOutput) timerFlush() {
	o.em.mu.Lock()
	defer o.em.mu.Unlock()
	o.armed = false
	if !o.closed {
		o.flush()
	}
}

// close delivers everything held back. Called once the command's output
// goroutines are done.
func (o *stepOutput) close() {
	o.em.mu.Lock()
	defer o.em.mu.Unlock()
	if o.closed {
		return
	}
	for _, s := range []string{streamStdout, streamStderr} {
		o.maskers[s].write(nil, true, func(b []byte) { o.append(s, b) })
	}
	o.flush()
	o.closed = true
	o.timer.Stop()
}

// maskValues lists the byte strings to mask: each secret and its base64
// encodings, longest first.
func maskValues(secrets []string) [][]byte {
	seen := map[string]bool{}
	var out [][]byte
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, []byte(s))
		}
	}
	for _, s := range secrets {
		add(s)
		if s != "" {
			add(base64.StdEncoding.EncodeToString([]byte(s)))
			add(base64.RawStdEncoding.EncodeToString([]byte(s)))
			add(base64.URLEncoding.EncodeToString([]byte(s)))
			add(base64.RawURLEncoding.EncodeToString([]byte(s)))
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// masker replaces secrets in a stream that arrives in pieces. It holds
// back a tail of the stream that could be the beginning of a secret, so a
// secret split across writes is still found. The tail is shorter than the
// longest secret.
type masker struct {
	secrets [][]byte
	first   [256]bool
	held    []byte
	scratch []byte
}

func newMasker(secrets [][]byte) *masker {
	m := &masker{secrets: secrets}
	for _, s := range secrets {
		m.first[s[0]] = true
	}
	return m
}

// write passes p on to emit with secrets replaced. With final set it also
// releases the held tail.
func (m *masker) write(p []byte, final bool, emit func([]byte)) {
	if len(m.secrets) == 0 {
		if len(p) > 0 {
			emit(p)
		}
		return
	}
	buf := p
	if len(m.held) > 0 {
		m.scratch = append(append(m.scratch[:0], m.held...), p...)
		buf = m.scratch
	}
	last := 0
	i := 0
	for i < len(buf) {
		if !m.first[buf[i]] {
			i++
			continue
		}
		match, partial := 0, false
		rest := buf[i:]
		for _, s := range m.secrets {
			if len(rest) >= len(s) {
				if len(s) > match && bytes.Equal(rest[:len(s)], s) {
					match = len(s)
				}
			} else if !final && bytes.HasPrefix(s, rest) {
				partial = true
			}
		}
		if partial {
			// Might be (a longer) secret: decide when more output comes.
			break
		}
		if match > 0 {
			if i > last {
				emit(buf[last:i])
			}
			emit(mask)
			i += match
			last = i
			continue
		}
		i++
	}
	if i > last {
		emit(buf[last:i])
	}
	m.held = append(m.held[:0], buf[i:]...)
}
