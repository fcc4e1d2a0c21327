#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Section-3 man pages from include/shmq.h: one page per public call, the
# comment above each prototype being its only source (docs/decisions.md,
# "Section-3 man pages"). Run by docs/meson.build; standard library only.
#
#   mkman3.py --list HEADER
#       print the file name of every page, after checking the header
#   mkman3.py --header HEADER --errors ERRORS_C --template SHMQ_3_IN
#             --version VERSION --outdir DIR
#       write the pages into DIR
#
# A call's comment reads "shmq_a, shmq_b - summary. Description...
# Returns ...": the names it documents, a summary sentence (the NAME line),
# the description, and from "Returns" to its end the RETURN VALUE, whose
# "-errno: -EX (why), -EY, ..." list becomes ERRORS. Upper-case parameter
# names (PATH, BUF) become italic. Every prototype must be named by one
# such comment, and every call that returns a value must say "Returns":
# otherwise this script fails, and the build with it.
import argparse
import os
import re
import sys
import textwrap


class HeaderError(Exception):
    pass


class Chunk:
    """A column-0 comment and the code after it, up to a blank line."""

    def __init__(self, comment, line):
        self.comment = comment  # text without /* */ and " * ", or None
        self.line = line    # where it starts, for messages
        self.code = []      # raw lines

    def code_text(self):
        return '\n'.join(self.code)


class Proto:
    def __init__(self, name, ret, params, lines, line):
        self.name = name
        self.ret = ret      # return type, "void" for none
        self.params = params    # parameter names, in order
        self.lines = lines  # the prototype as the header lays it out
        self.line = line


class Doc:
    """One comment that documents one or more calls: one page."""

    def __init__(self, names, summary, text, chunk):
        self.names = names
        self.summary = summary
        self.text = text    # the whole comment after "names - "
        self.chunk = chunk


def comment_text(lines):
    out = []
    for i, l in enumerate(lines):
        if i == 0:
            l = l[l.index('/*') + 2:]
        if l.rstrip().endswith('*/'):
            l = l.rstrip()[:-2]
        s = l.strip()
        if i > 0 and s.startswith('*'):
            s = s[1:].strip()
        out.append(s)
    while out and not out[0]:
        out.pop(0)
    while out and not out[-1]:
        out.pop()
    return '\n'.join(out)


def chunks(header_lines):
    res = []
    cur = None
    depth = 0   # inside a struct or enum, a blank line ends nothing
    i = 0
    n = len(header_lines)
    while i < n:
        l = header_lines[i]
        if depth > 0:
            cur.code.append(l)
            depth += braces(l)
        elif l.startswith('/*'):
            start = i
            while '*/' not in header_lines[i]:
                i += 1
                if i == n:
                    raise HeaderError('line %d: unterminated comment'
                              % (start + 1))
            cur = Chunk(comment_text(header_lines[start:i + 1]), start + 1)
            res.append(cur)
        elif not l.strip():
            cur = None
        else:
            if cur is None:
                cur = Chunk(None, i + 1)
                res.append(cur)
            cur.code.append(l)
            depth = braces(l)
        i += 1
    return res


def braces(l):
    if l.startswith('extern'):
        return 0    # extern "C" {: not a definition
    l = re.sub(r'/\*.*?(\*/|$)', '', l)
    return l.count('{') - l.count('}')


PROTO_START = re.compile(r'^[A-Za-z_][\w \t*]*?\b(shmq_\w+)\(')


def param_names(plist):
    plist = plist.strip()
    if plist in ('', 'void'):
        return []
    names = []
    for p in plist.split(','):
        m = re.search(r'(\w+)\s*(\[\s*\w*\s*\])?\s*$', p)
        if not m:
            raise HeaderError('cannot read parameter "%s"' % p)
        names.append(m.group(1))
    return names


def protos_in(chunk):
    res = []
    code = chunk.code
    i = 0
    while i < len(code):
        m = PROTO_START.match(code[i])
        if not m or code[i].startswith('#'):
            i += 1
            continue
        j = i
        while not code[j].rstrip().endswith(';'):
            j += 1
            if j == len(code):
                raise HeaderError('line %d: prototype of %s has no ";"'
                          % (chunk.line, m.group(1)))
        lines = [l.expandtabs(8).rstrip() for l in code[i:j + 1]]
        text = ' '.join(l.strip() for l in lines)
        pm = re.match(r'^(.*?)\b(shmq_\w+)\((.*)\)\s*;$', text)
        if not pm:
            raise HeaderError('line %d: cannot read the prototype "%s"'
                      % (chunk.line, text))
        ret = pm.group(1).strip()
        res.append(Proto(pm.group(2), ret, param_names(pm.group(3)),
                 lines, chunk.line))
        i = j + 1
    return res


NAME_LINE = re.compile(r'^(shmq_\w+(?:,\s*shmq_\w+)*)\s+-\s+(.*)$', re.S)


def first_sentence(text):
    """Up to the first period that ends a sentence, outside parentheses."""
    depth = 0
    for i, c in enumerate(text):
        if c == '(':
            depth += 1
        elif c == ')':
            depth = max(0, depth - 1)
        elif c == '.' and depth == 0 and (i + 1 == len(text) or
                          text[i + 1].isspace()):
            return text[:i + 1]
    return text


def drop_parens(s):
    """The sentence without its top-level parenthetical remarks."""
    out = []
    depth = 0
    for c in s:
        if c == '(':
            depth += 1
            continue
        if c == ')':
            depth = max(0, depth - 1)
            continue
        if depth == 0:
            out.append(c)
    s = ''.join(out)
    s = s.replace('()', '') # "shmq_peek()" lost its parentheses above
    return re.sub(r'\s+([,.;:])', r'\1', re.sub(r'\s+', ' ', s)).strip()


class Header:
    def __init__(self, path):
        with open(path, encoding='utf-8') as f:
            self.lines = f.read().split('\n')
        self.path = path
        self.chunks = chunks(self.lines)
        self.protos = {}
        self.docs = []
        self.doc_of = {}
        for c in self.chunks:
            for p in protos_in(c):
                if p.name in self.protos:
                    raise HeaderError('%s declared twice' % p.name)
                self.protos[p.name] = p
        errs = []
        params = set()
        for p in self.protos.values():
            params.update(p.params)
        for c in self.chunks:
            if c.comment is None:
                continue
            m = NAME_LINE.match(c.comment)
            if not m:
                continue
            names = [s.strip() for s in m.group(1).split(',')]
            text = re.sub(r'\s+', ' ', m.group(2)).strip()
            d = Doc(names, None, m.group(2).strip(), c)
            summary = top_split(drop_parens(first_sentence(text)),
                        [': ', '; '])[0].rstrip('.')
            summary = re.sub(r'\b[A-Z][A-Z0-9_]*\b',
                             lambda m: m.group(0).lower()
                             if m.group(0).lower() in params else m.group(0),
                             summary.replace('`', ''))
            if len(summary.split()) < 2:
                errs.append(
                    'line %d: the comment of %s has no summary sentence '
                    '("%s - what it does. ...")' % (c.line, names[0],
                                       names[0]))
            d.summary = summary
            for nm in names:
                if nm in self.doc_of:
                    errs.append('%s is documented twice (lines %d '
                              'and %d)' % (nm, self.doc_of[nm].chunk.line,
                                       c.line))
                if nm not in self.protos:
                    errs.append('line %d: the comment names %s, '
                              'which has no prototype' % (c.line, nm))
                self.doc_of[nm] = d
            self.docs.append(d)
        missing = [p for p in self.protos.values()
                   if p.name not in self.doc_of]
        errs.extend(
            'line %d: %s has no comment "%s - summary. ..." naming it'
            % (p.line, p.name, p.name) for p in missing)
        for d in self.docs:
            for nm in d.names:
                p = self.protos.get(nm)
                if p and p.ret != 'void' and not returns_split(d.text)[1]:
                    errs.append(
                        'line %d: %s returns %s but its comment has no '
                        '"Returns ..." sentence' % (d.chunk.line, nm, p.ret))
        if errs:
            raise HeaderError('%s:\n  ' % path + '\n  '.join(errs))
        self.all_params = params
        self.defines = self.read_defines()

    def pages(self):
        res = ['shmq.3']
        for d in self.docs:
            res += [n + '.3' for n in d.names]
        return res

    def read_defines(self):
        """name -> (value, trailing comment) of every #define."""
        res = {}
        for c in self.chunks:
            for l in c.code:
                m = re.match(r'#define\s+(\w+)\s+(.*?)\s*'
                             r'(?:/\*\s*(.*?)\s*\*/)?$', l)
                if m:
                    res[m.group(1)] = (m.group(2), m.group(3) or '')
        return res


# ---- from comment text to roff ----------------------------------------

def returns_split(text):
    """(description, returns): "Returns" starts a sentence and runs to the
    end of the comment."""
    m = re.search(r'(?:^|(?<=[.:;)]\s))Returns\b', text)
    if not m:
        m = re.search(r'(?:^|(?<=\.\n))Returns\b', text)
    if not m:
        return text, ''
    return text[:m.start()].rstrip(), text[m.start():].strip()


def esc(s):
    s = s.replace('\\', '\\e')
    # A minus sign where a code or an option is meant (-EINVAL, -errno,
    # -1), a hyphen inside words (read-only).
    return re.sub(r'(?<![\w\\])-(?=[\w])', r'\\-', s)


def inline(s, params, funcs):
    """Escape and mark up one paragraph of comment text."""
    s = esc(s)
    # Identifiers are never hyphenated:
    # \% starts the word: inside a word it would mark a break point.
    s = re.sub(r'(?<!\S)(?=\S*\w_\w)', r'\\%', s)
    s = re.sub(r'`([^`]+)`', r'\\fB\1\\fP', s)

    def fn(m):
        f = m.group(1)
        return '\\fB%s\\fP()' % f if f in funcs else m.group(0)
    s = re.sub(r'\b(shmq_\w+)\(\)', fn, s)

    def par(m):
        w = m.group(0)
        return '\\fI%s\\fP' % w.lower() if w.lower() in params else w
    return re.sub(r'\b[A-Z][A-Z0-9_]*\b', par, s)


def fill(s):
    """Roff source lines for one paragraph: a sentence starts a line."""
    out = []
    for sent in re.split(r'(?<=[.!?])\s+(?=[A-Z\\(])', s):
        for l in textwrap.wrap(sent, 78, break_long_words=False,
                       break_on_hyphens=False):
            if l[0] in ".'":
                l = '\\&' + l
            out.append(l)
    return out


def paragraphs(text):
    return [re.sub(r'\s+', ' ', p).strip()
        for p in re.split(r'\n\s*\n', text) if p.strip()]


def capital(s):
    return s[:1].upper() + s[1:]


CODE = r'(?:-E[A-Z0-9]+|SHMQ_E[A-Z0-9_]+)'


def top_split(s, seps):
    """Split S at any of SEPS outside parentheses."""
    parts, depth, cur, i = [], 0, '', 0
    while i < len(s):
        c = s[i]
        if c == '(':
            depth += 1
        elif c == ')':
            depth -= 1
        if depth == 0:
            hit = next((x for x in seps if s.startswith(x, i)), None)
            if hit:
                parts.append(cur)
                cur = ''
                i += len(hit)
                continue
        cur += c
        i += 1
    parts.append(cur)
    return parts


def error_list(ret):
    """Split 'Returns 0 or -errno: -EX (why), -EY. More.' into
    ('Returns 0 or -errno', [(code, why)], 'More.'); None when the
    sentence has no such list."""
    ret = re.sub(r'\s+', ' ', ret)
    m = re.match(r'^(Returns .*?-errno):\s*(.*)$', ret)
    if not m:
        return None
    rest = m.group(2)
    # The list ends at the first ". " or ";" outside parentheses.
    ends = top_split(rest, ['. ', '.\n', ';'])
    lst = ends[0].strip().rstrip('.')
    after = rest[len(ends[0]):].lstrip('.;').strip()
    items = []
    for it in top_split(lst, [', ', ' or ']):
        it = it.strip()
        im = re.match(r'^(%s)(?:\s*\((.*)\))?$' % CODE, it, re.S)
        if not im:
            return None
        items.append((im.group(1), (im.group(2) or '').strip()))
    return m.group(1), items, after


class Page:
    def __init__(self, hdr, errs, version):
        self.hdr = hdr
        self.version = version
        self.funcs = set(hdr.protos)
        self.errs = {self.code_value(k): v for k, v in errs.items()}

    def head(self, title, names, summary):
        return ['.\\" SPDX-License-Identifier: MIT',
            '.\\" Generated by docs/man3/mkman3.py from include/shmq.h: '
            'edit the header.',
            '.TH %s 3 "" "shmq %s" "shmq Manual"' % (title, self.version),
            '.SH NAME',
            '%s \\- %s' % (', '.join(names), esc(summary))]

    def synopsis(self, protos):
        out = ['.SH SYNOPSIS', '.nf', '.B #include <shmq.h>']
        for p in protos:
            out.append('.PP')
            for l in p.lines:
                out.append(self.bi_line(l, set(p.params)))
        out.append('.fi')
        return out

    @staticmethod
    def bi_line(l, params):
        # .BI alternates bold and italic arguments: a parameter's name
        # is the identifier right before a "," or ")".
        parts, last = [], 0
        for m in re.finditer(r'\b(\w+)(?=\s*(?:\[\w*\])?\s*[,)])', l):
            if m.group(1) in params:
                parts += [l[last:m.start()], m.group(1)]
                last = m.end()
        parts.append(l[last:])
        if len(parts) == 1:
            return '.B "%s"' % parts[0]
        return '.BI ' + ' '.join('"%s"' % x for x in parts)

    def refs(self, text, own):
        seen = []
        for f in re.findall(r'\b(shmq_\w+)\(\)', text):
            if f in self.funcs and f not in own and f not in seen:
                seen.append(f)
        return seen

    def call_page(self, d):
        hdr = self.hdr
        protos = [hdr.protos[n] for n in d.names]
        # Any call's parameter: a comment may name another call's (MSGS).
        params = hdr.all_params
        out = self.head(d.names[0], d.names, d.summary)
        out += self.synopsis(protos)
        desc, ret = returns_split(d.text)
        out.append('.SH DESCRIPTION')
        for i, para in enumerate(paragraphs(desc)):
            if i:
                out.append('.PP')
            out += fill(inline(capital(para), params, self.funcs))
        defs = definitions(hdr, d, protos)
        if defs:
            out += ['.PP', 'From', '.IR shmq.h :', '.PP', '.EX']
            for c in defs:
                lines = []
                if c.comment is not None:
                    cl = c.comment.split('\n')
                    if len(cl) == 1:
                        lines.append('/* %s */' % cl[0])
                    else:
                        lines += ['/*'] + [(' * ' + x).rstrip()
                                           for x in cl] + [' */']
                lines += [x.expandtabs(8).rstrip() for x in c.code]
                for x in lines:
                    x = x.replace('\\', '\\e')
                    out.append('\\&' + x if x[:1] in ".'" else x)
                out.append('')
            out[-1:] = ['.EE']
        if ret:
            out.append('.SH RETURN VALUE')
            el = error_list(ret)
            if el:
                lead, items, after = el
                out += fill(inline(lead + ' (see ERRORS).', params,
                                   self.funcs))
                if after:
                    out += fill(inline(capital(after), params, self.funcs))
                out.append('.SH ERRORS')
                for code, why in items:
                    if not why:
                        why = self.errs.get(self.code_value(code), '')
                    out += ['.TP', '.B ' + esc(code)]
                    out += fill(inline(capital(why), params, self.funcs)) \
                        or ['\\&']
            else:
                out += fill(inline(ret, params, self.funcs))
        see = self.refs(d.text + ' '.join(c.comment or '' for c in defs),
                d.names)
        out.append('.SH SEE ALSO')
        for f in see:
            out.append('.BR \\%%%s (3),' % f)
        out.append('.BR shmq (3)')
        return '\n'.join(out) + '\n'

    def code_value(self, code):
        """SHMQ_EOF -> -ESHUTDOWN; -EX stays."""
        defs = self.hdr.defines
        seen = 0
        while code in defs and seen < 4:
            code = defs[code][0].strip('()')
            seen += 1
        return code

    def overview(self, template):
        hdr = self.hdr
        defs = hdr.defines

        def block(key):
            """From the paragraph of a header comment that starts with
            KEY ("ABI:") to the end of that comment, without the key;
            "#NAME": the comment above "#define NAME"."""
            for c in hdr.chunks:
                if c.comment is None:
                    continue
                paras = paragraphs(c.comment)
                if key.startswith('#'):
                    if not any(re.match(r'#define\s+%s\b' % key[1:], l)
                           for l in c.code):
                        continue
                else:
                    at = [i for i, p in enumerate(paras)
                          if p.startswith(key)]
                    if not at:
                        continue
                    paras = paras[at[0]:]
                    if key.endswith(':'):
                        paras[0] = paras[0][len(key):].strip()
                return '\n.PP\n'.join('\n'.join(fill(inline(
                    capital(p), hdr.all_params, self.funcs)))
                    for p in paras)
            raise HeaderError('%s: no header comment for @COMMENT:%s@'
                      % (hdr.path, key))

        def calls():
            out = []
            for d in hdr.docs:
                # .BR alternates bold names and roman "(3), ".
                args = []
                for i, n in enumerate(d.names):
                    sep = '(3), ' if i + 1 < len(d.names) else '(3)'
                    args += ['\\%' + n, '"%s"' % sep]
                out += ['.TP', '.BR ' + ' '.join(args)]
                out += fill(capital(esc(d.summary)) + '.')
            return '\n'.join(out)

        def errors():
            named = {}
            for k, (v, _) in defs.items():
                if re.match(r'^SHMQ_E[A-Z]+$', k) or k == 'SHMQ_EVICTED':
                    named.setdefault(self.code_value(k), []).append(k)
            out = []
            for code, text in self.errs.items():
                if code == '0':
                    continue
                out.append('.TP')
                names = named.pop(code, [])
                shown = code if not names else '%s (%s)' % (
                    ', '.join(names), code)
                out.append('.B ' + esc(shown))
                out += fill(capital(esc(text)) + '.')
            if named:
                raise HeaderError('shmq_strerror() has no text for %s'
                          % ', '.join(sum(named.values(), [])))
            return '\n'.join(out)

        def seealso():
            names = [n for d in hdr.docs for n in d.names]
            return '\n'.join('.BR \\%%%s (3),' % n for n in names)

        def sub(m):
            key = m.group(1)
            if key == 'VERSION':
                return self.version
            if key == 'CALLS':
                return calls()
            if key == 'ERRORS':
                return errors()
            if key == 'SEEALSO':
                return seealso()
            if key.startswith('COMMENT:'):
                return block(key[8:])
            raise HeaderError('unknown @%s@ in the template' % key)
        return re.sub(r'@([A-Z]+(?::[^@]+)?)@', sub, template)


def definitions(hdr, d, protos):
    """The chunks of type and constant definitions a page shows: the
    structs its prototypes take, and what its comment or those structs
    name (enum shmq_x, SHMQ_X, SHMQ_X_*, "Flags for shmq_x()"), two
    levels deep. Error codes are left to ERRORS."""
    own = set(d.names)
    # Level 0: the types of the prototypes, the constants the description
    # names (not the structs it mentions in passing, nor what "Returns"
    # names).
    desc = returns_split(d.text)[0]
    text = re.sub(r'\b(?:struct|enum)\s+shmq_\w+', '', desc) + '\n' + \
        '\n'.join(' '.join(p.lines) for p in protos)
    picked = []
    for _ in range(2):
        words = set(re.findall(r'\b(?:struct|enum)\s+(shmq_\w+)', text))
        macros = set(re.findall(r'\bSHMQ_[A-Z0-9_]*[A-Z0-9]\b', text))
        prefixes = set(re.findall(r'\b(SHMQ_[A-Z0-9_]+_)\*', text))
        for c in hdr.chunks:
            if c in picked or c is d.chunk or not c.code:
                continue
            code = c.code_text()
            if PROTO_START.search(code) and any(
                    PROTO_START.match(l) for l in c.code):
                continue    # a call's chunk, not a definition
            if code.lstrip().startswith(('#ifndef', '#ifdef', '#endif',
                             '#include', '}', 'extern')):
                continue
            defined = set(re.findall(r'^(?:struct|enum)\s+(shmq_\w+)\s*\{',
                         code, re.M))
            mdefs = re.findall(r'^#define\s+(SHMQ_\w+)\s+(.*)$', code, re.M)
            if mdefs and all(re.match(r'\(-E', v.strip()) for _, v in mdefs):
                continue    # status codes: ERRORS and shmq(3)
            mnames = set(n for n, _ in mdefs)
            mnames.update(re.findall(r'^\s+(SHMQ_\w+)\s*=', code, re.M))
            hit = defined & words or mnames & macros or any(
                n.startswith(p) for n in mnames for p in prefixes)
            if not hit and c.comment:
                hit = (any(re.search(r'\b%s\(\)' % re.escape(n), c.comment)
                       for n in own) and
                       c.comment.lower().startswith(('flags for', 'what ')))
            if hit:
                picked.append(c)
        # The next level follows the code of what was picked (a field's
        # "enum shmq_x", "SHMQ_X_*"), not the comments above it.
        text = '\n'.join(c.code_text() for c in picked)
    return sorted(picked, key=lambda c: c.line)


def strerror_table(path):
    """code -> text of every case of shmq_strerror() in lib/errors.c."""
    with open(path, encoding='utf-8') as f:
        src = f.read()
    body = src[src.index('shmq_strerror(int err)'):]
    res = {}
    for m in re.finditer(r'case\s+([-\w]+):\s*return\s+"([^"]*)";', body):
        res[m.group(1)] = m.group(2)
    if len(res) < 10:
        raise HeaderError('%s: cannot read shmq_strerror()' % path)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--list', metavar='HEADER')
    ap.add_argument('--header')
    ap.add_argument('--errors')
    ap.add_argument('--template')
    ap.add_argument('--version', default='')
    ap.add_argument('--outdir')
    a = ap.parse_args()
    try:
        if a.list:
            print('\n'.join(Header(a.list).pages()))
            return 0
        if not (a.header and a.errors and a.template and a.outdir):
            ap.error('--header, --errors, --template and --outdir are needed')
        hdr = Header(a.header)
        pg = Page(hdr, strerror_table(a.errors), a.version)
        with open(a.template, encoding='utf-8') as f:
            template = f.read()
        files = {'shmq.3': pg.overview(template)}
        for d in hdr.docs:
            files[d.names[0] + '.3'] = pg.call_page(d)
            for n in d.names[1:]:
                files[n + '.3'] = '.so man3/%s.3\n' % d.names[0]
        for name, text in files.items():
            tmp = os.path.join(a.outdir, name + '.tmp')
            with open(tmp, 'w', encoding='utf-8') as f:
                f.write(text)
            os.replace(tmp, os.path.join(a.outdir, name))
    except HeaderError as e:
        print('mkman3: %s' % e, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
