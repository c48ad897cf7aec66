#!/usr/bin/env python3
"""rewrite.py IN.cu OUT.cpp — make a CUDA source compilable by g++ for the
tolk CPU emulator (tests/cuemu/README.md).

Two source rewrites; everything else is done by macros in cuemu_device.h:

  kernel<<<grid, block[, smem[, stream]]>>>(args)
      -> ::cuemu::launcher("kernel", kernel, grid, block[, smem[, stream]])(args)
     (kernel may be a template-id such as flash_kernel<T, 64, 32> or a
     qualified name)
  extern __shared__ [__align__(n)] T name[];
      -> T *const name = (T *)::cuemu::dyn_smem();

Comments and string/character literals are left alone. Line numbers are
kept (a #line directive names the original file and every rewrite keeps
its newlines), so compiler errors point at the .cu file.
"""
import re
import sys


def code_mask(src):
    """mask[i] is True where src[i] is code (not a comment or a literal)."""
    mask = [True] * len(src)
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            for k in range(i, j):
                mask[k] = False
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            for k in range(i, j):
                mask[k] = False
            i = j
        elif c in "\"'":
            # raw strings R"(...)" are not used by the kernels; plain literals only
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            j = min(j + 1, n)
            for k in range(i, j):
                mask[k] = False
            i = j
        else:
            i += 1
    return mask


def find_code(src, mask, needle, start):
    while True:
        i = src.find(needle, start)
        if i < 0 or mask[i]:
            return i
        start = i + 1


def kernel_start(src, end):
    """Start of the kernel expression that ends just before src[end]."""
    i = end
    while i > 0 and src[i - 1].isspace():
        i -= 1
    while True:
        if i > 0 and src[i - 1] == ">":  # template arguments: match < >
            depth, j = 0, i - 1
            while j >= 0:
                if src[j] == ">":
                    depth += 1
                elif src[j] == "<":
                    depth -= 1
                    if depth == 0:
                        break
                j -= 1
            i = j
            while i > 0 and src[i - 1].isspace():
                i -= 1
        j = i
        while j > 0 and (src[j - 1].isalnum() or src[j - 1] == "_"):
            j -= 1
        if j == i:
            raise SyntaxError("cannot find the kernel name before <<<")
        i = j
        k = i
        while k > 0 and src[k - 1].isspace():
            k -= 1
        if k >= 2 and src[k - 2:k] == "::":
            i = k - 2
            while i > 0 and src[i - 1].isspace():
                i -= 1
            if i == 0 or not (src[i - 1].isalnum() or src[i - 1] in "_>"):
                return i  # leading ::
            continue
        return i


def match_paren(src, mask, i):
    """src[i] == '(': index of the matching ')'."""
    depth = 0
    for j in range(i, len(src)):
        if not mask[j]:
            continue
        if src[j] in "([{":
            depth += 1
        elif src[j] in ")]}":
            depth -= 1
            if depth == 0:
                return j
    raise SyntaxError("unbalanced parentheses after a kernel launch")


def rewrite_launches(src):
    out, pos = [], 0
    while True:
        mask = code_mask(src)
        i = find_code(src, mask, "<<<", pos)
        if i < 0:
            break
        ks = kernel_start(src, i)
        name = src[ks:i].strip()
        # the configuration: up to the >>> at parenthesis depth 0
        depth, j = 0, i + 3
        while j < len(src):
            if mask[j]:
                if src[j] in "([{":
                    depth += 1
                elif src[j] in ")]}":
                    depth -= 1
                elif depth == 0 and src.startswith(">>>", j):
                    break
            j += 1
        else:
            raise SyntaxError("<<< without >>>")
        cfg = src[i + 3:j]
        k = j + 3
        while k < len(src) and src[k].isspace():
            k += 1
        if k >= len(src) or src[k] != "(":
            raise SyntaxError("kernel launch without an argument list")
        e = match_paren(src, mask, k)
        args = src[k + 1:e]
        site = " ".join(name.split()).replace("\\", "\\\\").replace('"', '\\"')
        line = src.count("\n", 0, ks) + 1
        repl = '::cuemu::launcher("%s (%s:%d)", %s, %s)(%s)' % (
            site, FILE_NAME, line, name, cfg.strip(), args)
        lost = src.count("\n", ks, e + 1) - repl.count("\n")
        repl += "\n" * max(lost, 0)
        src = src[:ks] + repl + src[e + 1:]
        pos = ks + len(repl)
    return src


EXTERN_SHARED = re.compile(
    r"extern\s+__shared__\s+((?:__align__\s*\(\s*\d+\s*\)\s*)?)([^;\[\]]*?)\s*"
    r"((?:__align__\s*\(\s*\d+\s*\)\s*)?)\b([A-Za-z_]\w*)\s*\[\s*\]\s*;")


def rewrite_extern_shared(src):
    def repl(m):
        ty = m.group(2).strip()
        ty = re.sub(r"__align__\s*\(\s*\d+\s*\)", "", ty).strip()
        text = "%s *const %s = (%s *)::cuemu::dyn_smem();" % (ty, m.group(4), ty)
        return text + "\n" * m.group(0).count("\n")

    mask = code_mask(src)
    pieces, last = [], 0
    for m in EXTERN_SHARED.finditer(src):
        if not mask[m.start()]:
            continue
        pieces.append(src[last:m.start()])
        pieces.append(repl(m))
        last = m.end()
    pieces.append(src[last:])
    return "".join(pieces)


FILE_NAME = "?"


def main():
    global FILE_NAME
    if len(sys.argv) != 3:
        sys.exit("usage: rewrite.py IN.cu OUT.cpp")
    path, out_path = sys.argv[1], sys.argv[2]
    FILE_NAME = path.rsplit("/", 1)[-1]
    with open(path, encoding="utf-8") as f:
        src = f.read()
    try:
        src = rewrite_extern_shared(src)
        src = rewrite_launches(src)
    except SyntaxError as e:
        sys.exit("%s: cuemu rewrite: %s" % (path, e))
    header = '#include "cuemu_device.h"\n#line 1 "%s"\n' % path.replace("\\", "/")
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(header + src)
    import os
    os.replace(tmp, out_path)


if __name__ == "__main__":
    main()
