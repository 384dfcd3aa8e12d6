// The setting of a test file: a platform of its own, its REST API, one Chromium, and the
// people (browser contexts) made in it; all of it is closed after the file, and every
// test of the file is watched for page problems (`watchProblems`).
//
// The hooks are registered where the fixture is called (inside the file's `describe`);
// what they make is read through getters once `beforeAll` has run.

import { afterAll, beforeAll } from 'vitest';
import type { Browser } from 'playwright-core';
import { Api } from './api';
import { type Person, type PersonOptions, launchBrowser, newPerson, watchProblems } from './browser';
import { Platform } from './platform';

export interface StageOptions {
    /** Runs once the platform is up, before the browser starts: data over the API. */
    seed?: (api: Api) => Promise<void>;
    /** People made (in this order, with a blank page each) once the browser has started. */
    people?: string[];
    /** The platform's extra environment (`APP_RETENTION_DAYS`, say). */
    env?: Record<string, string>;
}

/** What a file's hooks made; each getter throws until `beforeAll` has made it. */
export class Stage {
    #platform?: Platform;
    #api?: Api;
    #browser?: Browser;
    readonly #persons: Person[] = [];

    /** Registers the hooks that make and remove it all (call it inside the file's `describe`). */
    constructor(name: string, opts: StageOptions = {}) {
        beforeAll(async () => {
            this.#platform = await Platform.start(name, opts.env);
            this.#api = new Api(this.#platform.baseURL);
            await opts.seed?.(this.#api);
            this.#browser = await launchBrowser();
            for (const person of opts.people ?? []) await this.person(person);
        });
        afterAll(async () => {
            for (const p of this.#persons) await p.close();
            await this.#browser?.close();
            await this.#platform?.teardown();
        });
        watchProblems(() => this.#persons, () => this.#platform);
    }

    get platform(): Platform {
        return ready('the platform', this.#platform);
    }

    get api(): Api {
        return ready('the API', this.#api);
    }

    get browser(): Browser {
        return ready('the browser', this.#browser);
    }

    /** A person made so far (one of `opts.people`, say), by name. */
    who(name: string): Person {
        return ready(name, this.#persons.find((p) => p.name === name));
    }

    /** A new person (browser context and page), watched and closed with the file. */
    async person(name: string, opts: PersonOptions = {}): Promise<Person> {
        const p = await newPerson(this.browser, this.platform, name, opts);
        this.#persons.push(p);
        return p;
    }
}

function ready<T>(what: string, v: T | undefined): T {
    if (v === undefined) throw new Error(`${what} is not there: the file's beforeAll has not made it (did it fail?)`);
    return v;
}

/** A platform named `name` (its own database, stream, data directory…), its API and a browser. */
export function stage(name: string, opts: StageOptions = {}): Stage {
    return new Stage(name, opts);
}

/** alice and bob, each in a browser context of their own (on a blank page), on a stage of their own. */
export class TwoPeople extends Stage {
    get alice(): Person {
        return this.who('alice');
    }

    get bob(): Person {
        return this.who('bob');
    }

    /** [alice, bob] */
    get both(): Person[] {
        return [this.alice, this.bob];
    }
}

export function twoPeople(name: string, opts: Pick<StageOptions, 'seed' | 'env'> = {}): TwoPeople {
    return new TwoPeople(name, { ...opts, people: ['alice', 'bob'] });
}
