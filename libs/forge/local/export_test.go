package local

// GitLine exposes gitLine to the tests.
func (f *Forge) GitLine(stderr string) string { return f.gitLine(stderr) }
