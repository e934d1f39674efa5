"""notices to embargo holders, corrections and retractions: the kind and generation of each delivery; alerts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa

from distributor.store.schema import UTCDateTime

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('statements', schema=None) as batch_op:
        batch_op.add_column(sa.Column('generation', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('published_revision', sa.Integer(), nullable=True))
    with op.batch_alter_table('revisions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('note', sa.Text(), nullable=True))
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('generation', sa.Integer(), server_default='1', nullable=False))
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), server_default='statement', nullable=False))
        batch_op.add_column(sa.Column('generation', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('notice', sa.Integer(), server_default='0', nullable=False))
        batch_op.drop_constraint('uq_deliveries_target', type_='unique')
        batch_op.create_unique_constraint('uq_deliveries_target', [
            'statement_id', 'revision', 'channel', 'target', 'kind', 'generation', 'notice'])
    op.create_table(
        'notices',
        sa.Column('statement_id', sa.String(length=80), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.Column('generation', sa.Integer(), nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('detail', sa.JSON(), nullable=True),
        sa.Column('actor', sa.String(length=200), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['statement_id'], ['statements.id'], name='fk_notices_statement_id_statements'),
        sa.PrimaryKeyConstraint('statement_id', 'number', name='pk_notices'),
    )
    op.create_table(
        'alerts',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('statement_id', sa.String(length=80), nullable=True),
        sa.Column('channel', sa.String(length=80), nullable=True),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('raised_at', UTCDateTime(), nullable=False),
        sa.Column('resolved_at', UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id', name='pk_alerts'),
    )
    op.create_index('ix_alerts_open', 'alerts', ['key', 'resolved_at'])
    op.execute("UPDATE statements SET published_revision = revision WHERE status = 'released'")


def downgrade() -> None:
    op.drop_index('ix_alerts_open', table_name='alerts')
    op.drop_table('alerts')
    op.drop_table('notices')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_constraint('uq_deliveries_target', type_='unique')
        batch_op.create_unique_constraint('uq_deliveries_target', ['statement_id', 'revision', 'channel', 'target'])
        batch_op.drop_column('notice')
        batch_op.drop_column('generation')
        batch_op.drop_column('kind')
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.drop_column('generation')
    with op.batch_alter_table('revisions', schema=None) as batch_op:
        batch_op.drop_column('note')
    with op.batch_alter_table('statements', schema=None) as batch_op:
        batch_op.drop_column('published_revision')
        batch_op.drop_column('generation')
