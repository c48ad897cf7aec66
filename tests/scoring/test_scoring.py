#!/usr/bin/env python3
"""test_scoring.py — bench/suite.py's scoring gives the same numbers as calling the field's tools
directly: Whisper's normalisers (whisper-normalizer) + jiwer for WER/CER, sacrebleu for BLEU/chrF,
on a small fixed set; and a plain word-level edit distance written here agrees with both.

Run: python3 tests/scoring/test_scoring.py   (needs jiwer, sacrebleu, whisper-normalizer; skips
with a message when they are missing, unless TOLK_REQUIRE_SCORING=1).
"""
import importlib.machinery
import importlib.util
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SUITE = os.path.join(HERE, "..", "..", "bench", "suite.py")


def load_suite():
    loader = importlib.machinery.SourceFileLoader("tolk_bench_suite", SUITE)
    spec = importlib.util.spec_from_loader("tolk_bench_suite", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def edit_distance(a, b):
    """Levenshtein distance between sequences a and b (unit costs), a plain reference loop."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


# A small fixed set: (language, reference, hypothesis).
ASR = [
    ("en", "And so my fellow Americans, ask not what your country can do for you.",
     "And so, my fellow Americans: ask not what your country can do for you!"),
    ("en", "AFTER EARLY NIGHTFALL THE YELLOW LAMPS WOULD LIGHT UP HERE AND THERE",
     "After early nightfall, the yellow lamps would light up here and there."),
    ("en", "The colour of the sea was grey.", "The color of the see is gray"),
    ("en", "He paid twenty dollars for it.", "He paid $20 for it."),
    ("de", "Das Wetter ist heute schön.", "Das Wetter ist heute schon"),
    ("de", "Ich möchte einen Kaffee, bitte!", "ich möchte ein Kaffee bitte"),
    ("es", "¿Dónde está la estación de tren?", "Donde esta la estación del tren"),
    ("nl", "Voer uw pincode in, gevolgd door het hekje.", "Voer uw pincode in gevolgd door het hekje"),
    ("ja", "今日は良い天気です。", "今日は良い天気でした"),
    ("zh", "我们明天去公园。", "我们明天去公园玩"),
    ("en", "...", "uh"),  # normalises to an empty reference: not scored
]

TRANSLATION = [
    ("That agent is already logged on. Please enter your agent number followed by the pound key.",
     "The agent is already connected. Please enter your agent number followed by the pound key."),
    ("Please enter the conference pin number.", "Please enter the PIN of the conference."),
    ("The leader has left the conference.", "The leader has left the conference."),
    ("You are currently the only person in this conference.", "You are the only person in this conference now."),
]


class ScoringTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.suite = load_suite()
        import jiwer
        import sacrebleu
        from whisper_normalizer.basic import BasicTextNormalizer
        from whisper_normalizer.english import EnglishTextNormalizer
        cls.jiwer, cls.sacrebleu = jiwer, sacrebleu
        cls.en, cls.basic = EnglishTextNormalizer(), BasicTextNormalizer()

    def norm(self, text, lang):
        return " ".join((self.en if lang == "en" else self.basic)(text).split())

    def test_normalizer_is_whispers(self):
        for lang, ref, hyp in ASR:
            self.assertEqual(self.suite.normalize(ref, lang), self.norm(ref, lang))
            self.assertEqual(self.suite.normalize(hyp, lang), self.norm(hyp, lang))
        # the English normaliser's spelling and number rules are in effect
        self.assertEqual(self.suite.normalize("The colour grey", "en"), "the color gray")
        self.assertEqual(self.suite.normalize("He paid $20.", "en"),
                         self.suite.normalize("He paid twenty dollars.", "en"))

    def test_wer_matches_jiwer(self):
        s = self.suite.score_asr([r for _, r, _ in ASR], [h for _, _, h in ASR],
                                 [l for l, _, _ in ASR])
        refs, hyps = [], []
        for lang, ref, hyp in ASR:
            r, h = self.norm(ref, lang), self.norm(hyp, lang)
            if r and lang not in ("ja", "zh"):
                refs.append(r)
                hyps.append(h)
        self.assertAlmostEqual(s["wer"], 100 * self.jiwer.wer(refs, hyps), places=9)
        self.assertEqual(s["n_wer"], len(refs))
        # corpus-level: total edits / total reference words, by a plain loop
        edits = sum(edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps))
        words = sum(len(r.split()) for r in refs)
        self.assertAlmostEqual(s["wer"], 100 * edits / words, places=9)

    def test_cer_matches_jiwer(self):
        s = self.suite.score_asr([r for _, r, _ in ASR], [h for _, _, h in ASR],
                                 [l for l, _, _ in ASR])
        refs = [self.norm(r, l).replace(" ", "") for l, r, _ in ASR if l in ("ja", "zh")]
        hyps = [self.norm(h, l).replace(" ", "") for l, _, h in ASR if l in ("ja", "zh")]
        self.assertAlmostEqual(s["cer"], 100 * self.jiwer.cer(refs, hyps), places=9)
        edits = sum(edit_distance(list(r), list(h)) for r, h in zip(refs, hyps))
        self.assertAlmostEqual(s["cer"], 100 * edits / sum(len(r) for r in refs), places=9)
        # 今日は良い天気です -> 今日は良い天気でした: one substitution, one insertion, 9 characters
        self.assertAlmostEqual(s["per_language"]["ja"]["cer"], 100 * 2 / 9, places=9)

    def test_per_language(self):
        s = self.suite.score_asr([r for _, r, _ in ASR], [h for _, _, h in ASR],
                                 [l for l, _, _ in ASR])
        for lang in ("en", "de", "es", "nl"):
            refs = [self.norm(r, l) for l, r, _ in ASR if l == lang and self.norm(r, l)]
            hyps = [self.norm(h, l) for l, r, h in ASR if l == lang and self.norm(r, l)]
            self.assertAlmostEqual(s["per_language"][lang]["wer"],
                                   100 * self.jiwer.wer(refs, hyps), places=9)
            self.assertEqual(s["per_language"][lang]["n"], len(refs))
        # the nl hypothesis differs only in punctuation: no error after normalisation
        self.assertEqual(s["per_language"]["nl"]["wer"], 0.0)

    def test_fixed_value(self):
        s = self.suite.score_asr(["the cat sat on the mat", "hello world"],
                                 ["the cat sat on mat", "Hello, world!"], ["en", "en"])
        self.assertAlmostEqual(s["wer"], 100 * 1 / 8, places=9)

    def test_bleu_chrf_match_sacrebleu(self):
        refs = [r for r, _ in TRANSLATION]
        hyps = [h for _, h in TRANSLATION]
        s = self.suite.score_translation(refs, hyps)
        self.assertAlmostEqual(s["bleu"], self.sacrebleu.corpus_bleu(hyps, [refs]).score, places=9)
        self.assertAlmostEqual(s["chrf"], self.sacrebleu.corpus_chrf(hyps, [refs]).score, places=9)
        self.assertGreater(s["bleu"], 0)
        self.assertLess(s["bleu"], 100)
        same = self.suite.score_translation(refs, refs)
        self.assertAlmostEqual(same["bleu"], 100.0, places=6)
        self.assertAlmostEqual(same["chrf"], 100.0, places=6)

    def test_whitespace_is_collapsed(self):
        # the reference set has double spaces after full stops; scoring collapses them
        refs = ["Agent login.  Please enter your agent number."]
        hyps = ["Agent login. Please enter your agent number."]
        self.assertAlmostEqual(self.suite.score_translation(refs, hyps)["bleu"], 100.0, places=6)


def main():
    try:
        import jiwer  # noqa: F401
        import sacrebleu  # noqa: F401
        import whisper_normalizer  # noqa: F401
    except ImportError as e:
        if os.environ.get("TOLK_REQUIRE_SCORING") == "1":
            print(f"FAIL: {e} (pip install jiwer sacrebleu whisper-normalizer)")
            return 1
        print(f"SKIP: {e} (pip install jiwer sacrebleu whisper-normalizer)")
        print("0 passed, 0 failed, 1 skipped")
        return 0
    result = unittest.TextTestRunner(verbosity=2).run(
        unittest.defaultTestLoader.loadTestsFromTestCase(ScoringTest))
    failed = len(result.failures) + len(result.errors)
    print(f"{result.testsRun - failed} passed, {failed} failed")
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
