export * from './migrate.js';
