// ANSI colours in log text: a subset of SGR (ESC[...m) becomes CSS classes on spans of
// text nodes; every other escape sequence is dropped. Nothing in a log is parsed as HTML.

// ansiState is carried from line to line of a step's log, as a terminal would.
export function ansiState() {
  return { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false };
}

// eslint-disable-next-line no-control-regex
const ESC = /\x1b(?:\[([0-9;?]*)([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])/g;

// ansiSegments splits one line into [{text, cls}] under state (updated in place).
export function ansiSegments(line, state) {
  const out = [];
  let at = 0;
  let m;
  ESC.lastIndex = 0;
  while ((m = ESC.exec(line)) !== null) {
    if (m.index > at) out.push({ text: line.slice(at, m.index), cls: classes(state) });
    at = ESC.lastIndex;
    if (m[2] === 'm') sgr(m[1], state);
  }
  if (at < line.length) out.push({ text: line.slice(at), cls: classes(state) });
  return out;
}

function sgr(params, s) {
  const ps = params === '' ? [0] : params.split(';').map((p) => parseInt(p || '0', 10));
  for (let i = 0; i < ps.length; i++) {
    const p = ps[i];
    if (p === 0) Object.assign(s, ansiState());
    else if (p === 1) s.bold = true;
    else if (p === 2) s.dim = true;
    else if (p === 3) s.italic = true;
    else if (p === 4) s.underline = true;
    else if (p === 22) s.bold = s.dim = false;
    else if (p === 23) s.italic = false;
    else if (p === 24) s.underline = false;
    else if (p >= 30 && p <= 37) s.fg = p - 30;
    else if (p >= 90 && p <= 97) s.fg = p - 90 + 8;
    else if (p === 39) s.fg = null;
    else if (p >= 40 && p <= 47) s.bg = p - 40;
    else if (p >= 100 && p <= 107) s.bg = p - 100 + 8;
    else if (p === 49) s.bg = null;
    else if (p === 38 || p === 48) {
      // 256 colours: the first 16 map to the palette, the rest are left plain;
      // 24-bit colours are left plain too.
      const fg = p === 38;
      if (ps[i + 1] === 5) {
        const n = ps[i + 2];
        if (n >= 0 && n < 16) s[fg ? 'fg' : 'bg'] = n;
        i += 2;
      } else if (ps[i + 1] === 2) i += 4;
    }
  }
}

function classes(s) {
  const c = [];
  if (s.fg !== null) c.push(`fg${s.fg}`);
  if (s.bg !== null) c.push(`bg${s.bg}`);
  if (s.bold) c.push('b');
  if (s.dim) c.push('dim');
  if (s.italic) c.push('i');
  if (s.underline) c.push('u');
  return c.join(' ');
}

// styled reports whether text under state would carry any class.
export function styled(s) {
  return classes(s) !== '';
}
