"""attempts since the last requeue beside the total; where a statement's embargo came from

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts_since_requeue', sa.Integer(), server_default='0', nullable=False))
    with op.batch_alter_table('statements', schema=None) as batch_op:
        batch_op.add_column(sa.Column('embargo_source', sa.String(length=16), nullable=True))
    op.execute("UPDATE deliveries SET attempts_since_requeue = attempts")
    op.execute("UPDATE statements SET embargo_source = 'document' WHERE embargo IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('statements', schema=None) as batch_op:
        batch_op.drop_column('embargo_source')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('attempts_since_requeue')
