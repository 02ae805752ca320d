package service_test

import (
	"bytes"
	"strings"
	"testing"

	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
)

// readAll follows GetLogs' pages from the start and returns them.
func (e *env) readAll(org, run string) []*apiv1.GetLogsResponse {
	e.t.Helper()
	var pages []*apiv1.GetLogsResponse
	var after int64
	for {
		resp, err := e.svc.GetLogs(e.user(org), &apiv1.GetLogsRequest{Run: run, After: after})
		if err != nil {
			e.t.Fatalf("GetLogs after %d: %v", after, err)
		}
		pages = append(pages, resp)
		if resp.GetNextAfter() == 0 {
			return pages
		}
		if resp.GetNextAfter() <= after || resp.GetComplete() {
			e.t.Fatalf("page after %d: next_after %d, complete %v", after, resp.GetNextAfter(), resp.GetComplete())
		}
		after = resp.GetNextAfter()
	}
}

func TestGetLogsPagesByBytes(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		e = e.at(t)
		// 40 chunks of 60 KiB, 2.3 MiB: more than a page, and than a gRPC message would hold
		// with a larger page.
		var want bytes.Buffer
		for i := range int64(40) {
			text := strings.Repeat(string(rune('a'+i%26)), 60<<10)
			want.WriteString(text)
			e.emit(chunk("big", "org1", i+1, 0, eventsv1.LogStream_LOG_STREAM_STDOUT, text))
		}
		e.finish("big", "org1", 40)
		e.eventually("the whole log", func() bool {
			pages := e.readAll("org1", "big")
			return pages[len(pages)-1].GetComplete()
		})
		pages := e.readAll("org1", "big")
		var got bytes.Buffer
		for i, p := range pages {
			size := 0
			for _, c := range p.GetChunks() {
				size += len(c.GetText())
				got.WriteString(c.GetText())
			}
			if size > 1<<20 {
				t.Errorf("page %d holds %d bytes of output, want at most 1 MiB", i, size)
			}
			if last := i == len(pages)-1; p.GetComplete() != last {
				t.Errorf("page %d of %d: complete %v", i, len(pages), p.GetComplete())
			}
		}
		if len(pages) < 3 || !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("%d pages, %d bytes read back; want at least 3 pages and the %d bytes written, in order", len(pages), got.Len(), want.Len())
		}

		// Many tiny chunks: a page also stops at 1000 chunks.
		for i := range int64(1500) {
			e.emit(chunk("tiny", "org1", i+1, 0, eventsv1.LogStream_LOG_STREAM_STDOUT, "x"))
		}
		e.waitChunk("org1", "tiny", 1)
		e.eventually("1500 tiny chunks", func() bool {
			n := 0
			for _, p := range e.readAll("org1", "tiny") {
				n += len(p.GetChunks())
			}
			return n == 1500
		})
		if first := e.readAll("org1", "tiny")[0]; len(first.GetChunks()) != 1000 || first.GetNextAfter() != 1000 {
			t.Errorf("first page of tiny chunks: %d chunks, next_after %d; want 1000 and 1000", len(first.GetChunks()), first.GetNextAfter())
		}
	})
}

func TestRunLogLimitSecondLine(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		e = e.at(t)
		capped := func(seq int64, stream eventsv1.LogStream, text string) *eventsv1.LogEmitted {
			c := chunk("flood", "org1", seq, 0, stream, text)
			c.RunLogBytes = 10
			return c
		}
		e.emit(capped(1, eventsv1.LogStream_LOG_STREAM_STDOUT, "12345"))
		e.emit(capped(1, eventsv1.LogStream_LOG_STREAM_STDOUT, "12345")) // a redelivery counts once
		e.emit(capped(2, eventsv1.LogStream_LOG_STREAM_STDERR, "67890"))
		e.emit(capped(3, eventsv1.LogStream_LOG_STREAM_STDOUT, "past the cap"))
		e.emit(capped(4, eventsv1.LogStream_LOG_STREAM_SYSTEM, "[simpleci] output truncated\n"))
		e.finish("flood", "org1", 4)
		e.eventually("the whole log", func() bool { return e.logs("org1", "flood").GetComplete() })
		var texts []string
		for _, c := range e.logs("org1", "flood").GetChunks() {
			texts = append(texts, c.GetText())
		}
		if got := strings.Join(texts, "|"); got != "12345|67890||[simpleci] output truncated\n" {
			t.Errorf("stored %q: want the output up to the cap, the chunk past it kept empty (so the log is whole), system lines kept", got)
		}
	})
}
