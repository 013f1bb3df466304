import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { extractAnswer, isBareAnswer, lastBoxed, lastNumber, type AnswerPlace } from '../../src/rewards/extract.ts';

type Case = [text: string, answer: string | null];

function extractsAll(cases: Case[], places?: readonly AnswerPlace[]): void {
  for (const [text, answer] of cases) {
    assert.equal(extractAnswer(text, places)?.answer ?? null, answer, JSON.stringify(text));
  }
}

describe('extraction: places and their order', () => {
  const text = 'Step 1: 12 apples. \\boxed{7} then <answer>\\frac{1}{2}</answer> and #### 42\nfinally 99 left';

  it('<answer> first; then the last of \\boxed, #### and "final answer"; then "answer"; then math or a number', () => {
    assert.deepEqual(extractAnswer(text), { answer: '\\frac{1}{2}', place: 'answer-tag' });
    // #### ends after the box: within one tier the last occurrence wins (Math-Verify orders matches by their end).
    assert.deepEqual(extractAnswer(text, ['boxed', 'gsm8k', 'last-number']), { answer: '42', place: 'gsm8k' });
    assert.deepEqual(extractAnswer(text, ['boxed', 'last-number']), { answer: '7', place: 'boxed' });
    assert.deepEqual(extractAnswer(text, ['last-number']), { answer: '99', place: 'last-number' });
    assert.deepEqual(extractAnswer(text, ['last-number', 'answer-tag']), { answer: '\\frac{1}{2}', place: 'answer-tag' });
    assert.equal(extractAnswer('I think it is 5', ['answer-tag']), null);
    assert.deepEqual(extractAnswer('so \\boxed{3}. The final answer is $4$. I hope it is correct.'), { answer: '4', place: 'phrase' });
    assert.deepEqual(extractAnswer('The final answer is $4$. Check: \\boxed{3}'), { answer: '3', place: 'boxed' });
    assert.deepEqual(extractAnswer('the answer is 5, since $x = 2$ and 3 more'), { answer: '5', place: 'phrase' });
  });

  it('takes the last complete <answer> block and reads it again inside; an unclosed or empty one is no answer', () => {
    extractsAll(
      [
        ['<answer>3</answer> wait <answer> 4 </answer>', '4'],
        ['<answer>The answer is $\\boxed{12}$.</answer>', '12'],
        ['<answer>x = 5</answer>', 'x = 5'],
        ['<answer>So the total is $3 + 4 = 7$ apples.</answer>', '3 + 4 = 7'],
        ['<answer>3</answer> wait <answer>4', '3'],
        ['<answer>5', null],
        ['<answer>  </answer>', null],
        ['</answer> 5 <answer>', null],
      ],
      ['answer-tag'],
    );
  });

  it('a whole text that is an answer is taken as it stands when math or numbers are allowed', () => {
    extractsAll([['x = 5', 'x = 5'], ['\\{1, 2\\}', '\\{1, 2\\}'], ['\\frac13', '\\frac13'], ['1 000', '1 000'], ['5 meters', '5 meters']]);
    assert.equal(isBareAnswer('the number is not 10 which is 1,000.99€'), false);
    assert.equal(isBareAnswer('The answer is 5'), false);
    assert.equal(isBareAnswer('$5$'), false);
    assert.equal(isBareAnswer('12 and 13'), true);
  });
});

describe('extraction: boxes', () => {
  it('reads \\boxed{} with balanced (and escaped) braces, the last complete one, \\fbox and \\boxed 5', () => {
    assert.equal(lastBoxed('\\boxed{1} and \\boxed{\\frac{a}{b^{2}}}'), '\\frac{a}{b^{2}}');
    assert.equal(lastBoxed('so $\\boxed{\\{1, 2\\}}$'), '\\{1, 2\\}');
    assert.equal(lastBoxed('\\boxed{3} and then \\boxed{\\frac{1}{2'), '3'); // truncated last box
    assert.equal(lastBoxed('\\fbox{9}'), '9');
    assert.equal(lastBoxed('is $\\boxed 5$.'), '5');
    assert.equal(lastBoxed('is \\boxed 5.'), '5');
    assert.equal(lastBoxed('\\boxedfoo{1}'), null);
    assert.equal(lastBoxed('no box'), null);
  });

  it('joins the boxes of one answer, and keeps a percent sign written after the box', () => {
    extractsAll([
      ['The integers are \\boxed{-2} and \\boxed{1}.', '-2, 1'],
      ['$\\boxed{1}\\boxed{2}$', '1, 2'],
      ['\\[ \\boxed{-2} \\quad \\text{and} \\quad \\boxed{1}. \\]', '-2, 1'],
      ['first \\boxed{3}. Later, after more work, \\boxed{4}', '4'],
      ['or $\\boxed{20}$ percent.', '20\\%'],
      ['$\\boxed{28}$ pct', '28\\%'],
      ['\\boxed{28\\%}', '28\\%'],
    ]);
  });
});

describe('extraction: phrases, GSM8K and math', () => {
  it('GSM8K: the rest of the line after the last ####', () => {
    extractsAll(
      [
        ['She has 3 + 4 = 7\n#### 1,000\n', '1,000'],
        ['#### 5\nmore #### 6.', '6'],
        ['#### \n', null],
      ],
      ['gsm8k'],
    );
  });

  it('"final answer": math right after "is", else the value of its sentence', () => {
    extractsAll([
      ['Final Answer: The final answer is $28 \\%$. I hope it is correct.', '28 \\%'],
      ['Final Answer: The largest $n$ is 34.', '34'],
      ['Final Answer: The final answer is 7.78.', '7.78'],
      ['Final Answer: The final answer is 12,000,023. I hope it is correct.', '12,000,023'],
      ['Final Answer: Jane started growing Sphere 3 hours ago. I hope it is correct.', '3'],
      ['The final answer is \\"$12 $ and $13 $\\". I hope it is correct.', '12, 13'],
      ['**Final Answer**\n\\[ 189 \\]', '189'],
      ['Final answer: B', 'B'],
    ]);
  });

  it('"answer": the first math or number within 50 characters of the word', () => {
    extractsAll([
      ['Answer \\[ 9 \\]', '9'],
      ['Answer $ 9 $', '9'],
      ['Therefore, answer is 189.', '189'],
      ['The answer is Evelyn.', 'Evelyn'],
      ['The answer is (C)', '(C)'],
      ['**Answer:** $\\frac{3}{4}$ of the cake', '\\frac{3}{4}'],
    ]);
  });

  it('math: the last $…$, $$…$$, \\(…\\) or \\[…\\] (display math across lines, inline math not), joined by "and"', () => {
    extractsAll([
      ['so $x = 2$ and then $y = 3$.', 'y = 3'],
      ['The roots are $-2$, $1$ and $3$', '-2, 1, 3'],
      ['we get \\[\n\\frac{1}{2}\n\\]', '\\frac{1}{2}'],
      ['we get $$\n\\frac{1}{2}\n$$', '\\frac{1}{2}'],
      ['we get \\(\\sqrt{2}\\) here', '\\sqrt{2}'],
      ['It costs $5 and $6 today', '6'], // dollars, not math: the last number
      ['the value $x$ is 5.', '5'], // the number ends after the math
      ['$28$ %', '28\\%'],
      ['Answer $ \\frac{1}{2} \\$ = \\frac{10}{9} $', '\\frac{1}{2} \\$ = \\frac{10}{9}'],
    ]);
  });
});

describe('extraction: numbers', () => {
  it('the last number: signs, decimals, thousands groups, decimal commas, fractions, not a minus that is subtraction', () => {
    const cases: Array<[string, string | null]> = [
      ['costs 1,234.50 dollars', '1234.50'],
      ['it is -3.', '-3'],
      ['it is −7', '-7'],
      ['so 5-3', '3'],
      ['p = 3/4', '3/4'],
      ['probability is 2/3.', '2/3'],
      ['values 1,2,3', '3'],
      ['about .5 of it', '0.5'],
      ['it weighs 1 000 kg', '1000'],
      ['it is 1000,99 euros', '1000.99'],
      ['Soucis : 2,74 $ a..', '2.74'],
      ['0,111', '0.111'],
      ['so 12,000,003 is it', '12000003'],
      ['the number is not 10 which is 1,000.99€', '1000.99'],
      ["not it's not 10 it's 1,000.99m²", '1000.99'],
      ['it is $1,000.99', '1000.99'],
      ['rose by 28 percent', '28\\%'],
      ['rose by 28%', '28\\%'],
      ['half: \\frac{1}{2}', '\\frac{1}{2}'],
      ['AZYUK2A', null],
      ['x_2 only', null],
      ['no digits', null],
    ];
    for (const [text, number] of cases) assert.equal(lastNumber(text), number, text);
  });

  it('multiple choice: a standalone letter among the choices, never one inside a word', () => {
    const choices = { choices: ['A', 'B', 'C', 'D'] };
    assert.equal(extractAnswer('I pick C because it is larger', undefined, choices)?.answer, 'C');
    assert.equal(extractAnswer('Of the four, I would say option (B) fits best', undefined, choices)?.answer, 'B');
    assert.equal(extractAnswer('We know that ABCD is a square here', undefined, choices), null);
    assert.equal(extractAnswer('Between the options I would pick C', undefined), null);
  });

  it('megabytes of text and thousands of unclosed boxes are read in linear time', () => {
    assert.equal(extractAnswer('we get 12 '.repeat(160_000))?.answer, '12');
    assert.equal(extractAnswer(`${'\\boxed{'.repeat(5_000)}5`)?.answer, '5');
    assert.equal(extractAnswer(`${'$x$. '.repeat(50_000)}$7$`)?.answer, '7');
  });
});
