// Pretraining text: a seeded generator of a small synthetic English corpus, and readers of a user's corpus.
//
// The synthetic corpus is about one made-up world, fixed by the seed: people with a job, a home town, a
// favourite colour, pets and a friend; towns with a landmark and a food. Documents state those facts in
// varied templates (profiles, town notes, question-answer pairs, short stories) and add arithmetic sentences.
// The facts never contradict each other, so a small model can learn both the grammar and the facts, and a
// sample shows at a glance whether it did ("Mira Tolden lives in Fenford" is right or wrong in this world).
import { extname } from 'node:path';
import { pick } from '../tasks/split.ts';
import { Rng } from '../tensor/index.ts';
import { readCorpus } from '../tokenizer/corpus.ts';
import { UserError } from '../util/errors.ts';

// ---------------------------------------------------------------------------------------------------------
// The world

const COLOURS = ['red', 'blue', 'green', 'yellow', 'purple', 'orange', 'white', 'black', 'brown', 'grey', 'pink', 'gold'];
const ANIMALS = [['cat', 'cats'], ['dog', 'dogs'], ['horse', 'horses'], ['goat', 'goats'], ['owl', 'owls'], ['fox', 'foxes'],
  ['rabbit', 'rabbits'], ['duck', 'ducks'], ['sheep', 'sheep'], ['hen', 'hens']] as const;
const FOODS = ['bread', 'apples', 'soup', 'cheese', 'rice', 'plums', 'honey', 'fish', 'pears', 'cake', 'beans', 'eggs'];
const JOBS = ['baker', 'farmer', 'teacher', 'painter', 'sailor', 'doctor', 'builder', 'singer', 'potter', 'miller', 'weaver', 'fisher'];
const LANDMARKS = ['by the river', 'on a hill', 'near the sea', 'in a green valley', 'at the edge of the forest', 'beside a lake'];
const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'eleven', 'twelve',
  'thirteen', 'fourteen', 'fifteen', 'sixteen', 'seventeen', 'eighteen', 'nineteen', 'twenty'];
const FIRST_SYLLABLES = ['Mi', 'To', 'Ba', 'Le', 'Ka', 'Ro', 'Su', 'Fe', 'Da', 'Ni', 'Po', 'Ve', 'Ha', 'Jo', 'Lu', 'Wi'];
const NAME_ENDINGS = ['ra', 'bin', 'lo', 'na', 'dric', 'ssa', 'mon', 'ta', 'vin', 'lia', 'rek', 'ne'];
const FAMILY_STARTS = ['Tol', 'Fal', 'Mar', 'Bren', 'Cor', 'Ash', 'Wel', 'Dun', 'Hol', 'Pen'];
const FAMILY_ENDS = ['den', 'low', 'wick', 'ley', 'ton', 'by', 'mere', 'ford'];
const TOWN_STARTS = ['Bram', 'Fen', 'Oak', 'Stone', 'Mill', 'Red', 'Elm', 'Crow', 'Lark', 'Thorn', 'Glen', 'Ash'];
const TOWN_ENDS = ['wick', 'ford', 'haven', 'field', 'bury', 'dale', 'moor', 'stead'];

export interface Person {
  first: string;
  full: string;
  he: 'he' | 'she';
  his: 'his' | 'her';
  job: string;
  town: Town;
  colour: string;
  pet: readonly [string, string];
  pets: number;
  food: string;
  friend: Person | null;
}

export interface Town {
  name: string;
  landmark: string;
  food: string;
  people: Person[];
}

export interface World {
  people: Person[];
  towns: Town[];
}

/** Distinct strings drawn from `make` (retrying on repeats). */
function distinct(rng: Rng, count: number, make: () => string): string[] {
  const out = new Set<string>();
  while (out.size < count) out.add(make());
  return [...out];
}

// 16 people and 6 towns: small enough that each fact recurs often in the few hundred thousand tokens a
// CPU run of a few minutes sees (a 5M model then answers most questions about them), large enough to vary.
export function makeWorld(rng: Rng, people = 16, towns = 6): World {
  const townList: Town[] = distinct(rng, towns, () => pick(rng, TOWN_STARTS) + pick(rng, TOWN_ENDS))
    .map((name) => ({ name, landmark: pick(rng, LANDMARKS), food: pick(rng, FOODS), people: [] }));
  const firstNames = distinct(rng, people, () => pick(rng, FIRST_SYLLABLES) + pick(rng, NAME_ENDINGS));
  const personList: Person[] = firstNames.map((first) => {
    const she = rng.uniform() < 0.5;
    const town = pick(rng, townList);
    const p: Person = {
      first,
      full: `${first} ${pick(rng, FAMILY_STARTS)}${pick(rng, FAMILY_ENDS)}`,
      he: she ? 'she' : 'he',
      his: she ? 'her' : 'his',
      job: pick(rng, JOBS),
      town,
      colour: pick(rng, COLOURS),
      pet: pick(rng, ANIMALS),
      pets: 1 + rng.int(5),
      food: pick(rng, FOODS),
      friend: null,
    };
    town.people.push(p);
    return p;
  });
  for (const p of personList) {
    let friend = pick(rng, personList);
    while (friend === p) friend = pick(rng, personList);
    p.friend = friend;
  }
  return { people: personList, towns: townList.filter((t) => t.people.length > 0) };
}

// ---------------------------------------------------------------------------------------------------------
// Documents

const cap = (s: string) => s[0].toUpperCase() + s.slice(1);
const petPhrase = (p: Person) => `${NUMBER_WORDS[p.pets]} ${p.pets === 1 ? p.pet[0] : p.pet[1]}`;
const him = (p: Person) => (p.he === 'he' ? 'him' : 'her');
const article = (word: string) => (/^[aeiou]/.test(word) ? `an ${word}` : `a ${word}`);

function profile(rng: Rng, p: Person): string {
  const facts = [
    () => pick(rng, [`${cap(p.he)} lives in ${p.town.name}.`, `${p.first}'s home is in ${p.town.name}.`]),
    () => pick(rng, [`${cap(p.his)} favourite colour is ${p.colour}.`, `${p.first} likes the colour ${p.colour}.`]),
    () => pick(rng, [`${cap(p.he)} has ${petPhrase(p)}.`, `${p.first} keeps ${petPhrase(p)} at home.`]),
    () => pick(rng, [`${p.first} loves to eat ${p.food}.`, `${cap(p.his)} favourite food is ${p.food}.`]),
    () => `${cap(p.his)} best friend is ${p.friend!.full}.`,
  ];
  const body = rng.shuffle(facts.slice(0)).slice(0, 2 + rng.int(4)).map((f) => f());
  return [`${p.full} is ${article(p.job)} from ${p.town.name}.`, ...body].join(' ');
}

function townNote(rng: Rng, t: Town): string {
  const names = t.people.map((p) => p.full);
  const who = names.length === 1 ? `${names[0]} lives there.` : `${names.slice(0, -1).join(', ')} and ${names.at(-1)} live there.`;
  return [
    pick(rng, [`${t.name} is a small town ${t.landmark}.`, `The town of ${t.name} lies ${t.landmark}.`]),
    pick(rng, [`It is known for its ${t.food}.`, `People come to ${t.name} for the ${t.food}.`]),
    who,
  ].join(' ');
}

function questions(rng: Rng, world: World): string {
  const lines: string[] = [];
  for (let i = 0; i < 4; i++) {
    const p = pick(rng, world.people);
    lines.push(pick(rng, [
      `Q: Where does ${p.full} live? A: ${p.first} lives in ${p.town.name}.`,
      `Q: What is the favourite colour of ${p.first}? A: ${cap(p.his)} favourite colour is ${p.colour}.`,
      `Q: What does ${p.first} do? A: ${cap(p.he)} is ${article(p.job)}.`,
      `Q: How many ${p.pet[1]} does ${p.first} have? A: ${cap(p.he)} has ${NUMBER_WORDS[p.pets]}.`,
      `Q: Who is the best friend of ${p.first}? A: ${cap(p.his)} best friend is ${p.friend!.first}.`,
      `Q: What is ${p.town.name} known for? A: It is known for its ${p.town.food}.`,
    ]));
  }
  return lines.join('\n');
}

function story(rng: Rng, world: World): string {
  const p = pick(rng, world.people);
  const f = p.friend!;
  const colourThing = pick(rng, ['bird', 'kite', 'boat', 'flower', 'door', 'hat']);
  const when = pick(rng, ['One morning', 'One day', 'Early one evening', 'Last summer', 'On a cold night']);
  const sentences = [
    `${when}, ${p.first} the ${p.job} left ${p.town.name} to visit ${f.first} in ${f.town.name}.`,
    pick(rng, [`On the way, ${p.he} saw ${article(p.colour)} ${colourThing}.`, `${cap(p.he)} walked past ${article(p.colour)} ${colourThing} and smiled, because ${p.colour} is ${p.his} favourite colour.`]),
    `"Hello, ${f.first}!" said ${p.first}.`,
    pick(rng, [`"Hello, ${p.first}. Come in and eat some ${f.food}," said ${f.first}.`, `${f.first} was happy to see ${f.his} friend and gave ${him(p)} some ${f.food}.`]),
    pick(rng, [`They talked about the ${f.pet[1]} of ${f.first} and the ${p.pet[1]} of ${p.first}.`, `${p.first} told ${f.first} that ${p.his} ${p.pets === 1 ? p.pet[0] : p.pet[1]} missed ${him(p)}.`]),
    pick(rng, [`When the sun went down, ${p.first} went home to ${p.town.name}.`, `At night, ${p.first} walked back to ${p.town.name} and fed ${p.his} ${petPhrase(p)}.`]),
    pick(rng, ['The end.', `It was a good day for ${p.first}.`]),
  ];
  return sentences.join(' ');
}

function arithmetic(rng: Rng): string {
  const lines: string[] = [];
  for (let i = 0; i < 5; i++) {
    const a = rng.int(11);
    const b = rng.int(11);
    const words = rng.uniform() < 0.5;
    const kind = rng.int(3);
    if (kind === 0) lines.push(words ? `${cap(NUMBER_WORDS[a])} plus ${NUMBER_WORDS[b]} is ${NUMBER_WORDS[a + b]}.` : `${a} + ${b} = ${a + b}`);
    else if (kind === 1) {
      const [hi, lo] = a >= b ? [a, b] : [b, a];
      lines.push(words ? `${cap(NUMBER_WORDS[hi])} minus ${NUMBER_WORDS[lo]} is ${NUMBER_WORDS[hi - lo]}.` : `${hi} - ${lo} = ${hi - lo}`);
    } else {
      const x = a % 5;
      const y = b % 5;
      lines.push(words ? `${cap(NUMBER_WORDS[x])} times ${NUMBER_WORDS[y]} is ${NUMBER_WORDS[x * y]}.` : `${x} * ${y} = ${x * y}`);
    }
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------------
// A second language

/**
 * The world's words with their Chinese (the second script of the R1 pipeline's base model, whose chains of
 * thought mix English and Chinese as R1-Zero's do): colours, animals, foods and the numbers one to ten.
 */
export const BILINGUAL_WORDS: ReadonlyArray<readonly [en: string, zh: string]> = [
  ['red', '红'], ['blue', '蓝'], ['green', '绿'], ['yellow', '黄'], ['white', '白'], ['black', '黑'], ['pink', '粉'], ['gold', '金'],
  ['cat', '猫'], ['dog', '狗'], ['horse', '马'], ['goat', '羊'], ['fox', '狐'], ['duck', '鸭'], ['hen', '鸡'], ['fish', '鱼'],
  ['bread', '面包'], ['apples', '苹果'], ['soup', '汤'], ['rice', '米饭'], ['honey', '蜂蜜'], ['cake', '蛋糕'], ['beans', '豆'], ['eggs', '蛋'],
  ['one', '一'], ['two', '二'], ['three', '三'], ['four', '四'], ['five', '五'], ['six', '六'], ['seven', '七'], ['eight', '八'], ['nine', '九'], ['ten', '十'],
];

/** A page of a small English-Chinese dictionary: `count` entries in varied sentence forms, in both directions. */
export function dictionaryDocument(rng: Rng, count = 6): string {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const [en, zh] = pick(rng, BILINGUAL_WORDS);
    lines.push(pick(rng, [`${en} = ${zh}.`, `The Chinese for ${en} is ${zh}.`, `${zh} means ${en}.`, `In Chinese, ${en} is ${zh}.`]));
  }
  return lines.join(' ');
}

/**
 * `documents` documents of the synthetic corpus, the same for the same seed. Mix: 25% stories, 30% profiles,
 * 20% question-answer sets, 10% arithmetic, 15% town notes.
 */
export function syntheticCorpus(seed: number, documents: number): string[] {
  const rng = new Rng(seed);
  const world = makeWorld(rng);
  const out: string[] = [];
  for (let i = 0; i < documents; i++) {
    const r = rng.uniform();
    if (r < 0.25) out.push(story(rng, world));
    else if (r < 0.55) out.push(profile(rng, pick(rng, world.people)));
    else if (r < 0.75) out.push(questions(rng, world));
    else if (r < 0.85) out.push(arithmetic(rng));
    else out.push(townNote(rng, pick(rng, world.towns)));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// A user's corpus

/**
 * Documents of a .txt file (the whole file is one document) or a .jsonl file (the "text" string of each line),
 * read and checked by the tokenizer layer's reader: invalid UTF-8 names the file and byte offset, a bad JSONL
 * line names file:line.
 */
export function readCorpusFile(file: string): string[] {
  const texts = readCorpus(file);
  // readCorpus cuts a long .txt into pieces for the BPE trainer; for packing they are one document again.
  const docs = (extname(file).toLowerCase() === '.txt' ? [texts.join('')] : texts).filter((d) => d.length > 0);
  if (docs.length === 0) throw new UserError(`${file}: corpus is empty`);
  return docs;
}
