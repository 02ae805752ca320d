package pipeline

import (
	"bytes"
	"errors"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{"steps":[{"name":"a","run":"x"}]}`,
		`{"steps":[{"name":"Install","condition":"context.event == 'push'","run":["echo \"hi\"","npm install"]}]}`,
		`{"steps":[{"name":"a","id":"b","condition":"failure() || env.?X.orValue('') == 'y'","run":"x","env":{"A":"1"},"timeout":"90s","continueOnError":true,"workingDirectory":"sub"}]}`,
		`{"steps":[{"name":"a","condition":"'\u00e9\ud83d\ude00' == x","run":"x"}]}`,
		`{"steps":[{"name":"a","condition":"\ud800 && nope","run":"x"}]}`,
		`{"steps":[{"name":"a","run":"x","run":"y"},{"name":"a"}]}`,
		`{"steps":[]}`, `[]`, ``, `{`, `{"steps":[{"name":"a","run":"x",}]}`, "{\"steps\":\"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("f.json", data)
		if err != nil {
			if p != nil {
				t.Fatal("pipeline and error")
			}
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %T %v", err, err)
			}
			lines := bytes.Count(data, []byte("\n")) + 1
			for _, e := range errs {
				if e.Line < 1 || e.Line > lines || e.Col < 1 || e.Msg == "" || e.File != "f.json" {
					t.Fatalf("bad error %+v", e)
				}
			}
			return
		}
		if len(p.Steps) == 0 {
			t.Fatal("no steps")
		}
		ids := map[string]bool{}
		for _, s := range p.Steps {
			if s.Condition == nil || len(s.Run) == 0 || s.Name == "" || ids[s.ID] {
				t.Fatalf("bad step %+v", s)
			}
			ids[s.ID] = true
			_, _ = s.Condition.Eval(Vars{})
		}
	})
}
